"""invoke_core/allocator.py: with its heap settings a freed large buffer is reused, not mapped and zeroed
again (the page faults bench/suite.py found in every diffusion step); with INVOKE_CANVAS_MALLOC=system
glibc's defaults stay. Each case runs in a fresh process: the settings are per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, resource
from invoke_core import allocator
tuned = allocator.tune()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 48 << 20                                       # above glibc's largest dynamic mmap threshold
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def use_once():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)                     # every page touched, as a tensor's buffer is
    libc.free(block)
use_once()
before = faults()
for _ in range(20):
    use_once()
after = faults()
allocator.release()
print(json.dumps({"tuned": tuned, "faults_per_buffer": (after - before) / 20}))
"""


def _probe(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_buffer_is_reused_with_the_settings_and_mapped_again_without():
    system = _probe({"INVOKE_CANVAS_MALLOC": "system"})
    tuned = _probe({"INVOKE_CANVAS_MALLOC": ""})
    assert system["tuned"] is False and tuned["tuned"] is True
    pages = (48 << 20) // 4096
    assert system["faults_per_buffer"] > pages / 2, f"glibc's default maps each buffer afresh: {system}"
    assert tuned["faults_per_buffer"] < pages / 20, f"the tuned heap reuses it: {tuned}"
