"""Keep the C heap's freed memory for the next step instead of handing it back to the kernel.

On Linux with glibc, every allocation above malloc's mmap threshold (dynamic, at most 32 MB) is a fresh
mmap and every free an munmap, and a thread's arena trims what it frees. A diffusion step allocates and
frees the same large buffers over and over (oneDNN's weight reorders, the VAE's activations), so each
step had the kernel map and zero them again: bench/job_child.py counted ~1.9 million page faults per
job of a full-size SD1.5 at 128 px on the CPU, and with the settings below none, and the job ~25%
faster. It is what tcmalloc/jemalloc preloading does for A1111; here with glibc's own knobs.

`tune()` (at process start, before threads, where the CLI starts) routes every thread to the main heap
and keeps freed memory in the process; `release()` hands free memory back when the worker is idle or
the model cache evicts, so RAM held between bursts of jobs stays bounded. Elsewhere (macOS, Windows,
musl) both are no-ops. INVOKE_CANVAS_MALLOC=system leaves glibc's defaults (bench/suite.py measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# Free memory above this at the top of the heap is still trimmed at once (C int: at most 2 GiB - 1).
TRIM_THRESHOLD_BYTES = (1 << 31) - 1

_lock = threading.Lock()
_state: dict[str, object] = {"tuned": False, "libc": None}


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    if _state["libc"] is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _ = libc.mallopt, libc.malloc_trim  # glibc has both; musl has neither
        except (OSError, AttributeError):
            _state["libc"] = False
        else:
            libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
            _state["libc"] = libc
    return _state["libc"] or None


def tune() -> bool:
    """Apply the settings once per process; whether they took (False off glibc)."""
    with _lock:
        if _state["tuned"]:
            return True
        if os.environ.get("INVOKE_CANVAS_MALLOC", "").lower() == "system":
            return False
        libc = _libc()
        if libc is None:
            return False
        # one heap for every thread: the server's worker thread then reuses memory like the main thread
        # (a thread arena's heaps are 64 MB mmaps, trimmed as soon as they empty)
        ok = libc.mallopt(_M_ARENA_MAX, 1) == 1
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and ok  # large blocks from the heap too, reused after free
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
        _state["tuned"] = ok
        if not ok:
            log.debug("mallopt refused a setting; the C heap keeps its defaults")
        return ok


def tuned() -> bool:
    return bool(_state["tuned"])


def release() -> None:
    """Give the heap's free pages back to the kernel (idle time, after an eviction)."""
    libc = _libc()
    if libc is not None and _state["tuned"]:
        libc.malloc_trim(0)
