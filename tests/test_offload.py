"""Choosing how a model over the VRAM budget runs (invoke_core/offload.py). The offload hooks themselves
need a CUDA device: tests/test_gpu.py runs them on a lent GPU."""

from __future__ import annotations

import pytest

from invoke_core.errors import UnsupportedError
from invoke_core.offload import OFFLOAD_MODES, choose_offload

GB = 1 << 30


def test_auto_runs_a_model_that_fits_as_it_is_and_streams_one_that_does_not():
    assert choose_offload("auto", "cuda", 6 * GB, 8 * GB) == "none"
    assert choose_offload("auto", "cuda:1", 12 * GB, 8 * GB, denoiser_bytes=5 * GB) == "model", "the denoiser fits alone"
    assert choose_offload("auto", "cuda", 24 * GB, 8 * GB, denoiser_bytes=16 * GB) == "group", "it does not"
    assert choose_offload("auto", "cuda", 24 * GB, 8 * GB) == "group", "no denoiser known: the whole"


def test_a_forced_mode_is_kept_and_the_cpu_offloads_nothing():
    for mode in ("none", "model", "group", "sequential"):
        assert choose_offload(mode, "cuda", 1, 8 * GB) == mode
        assert choose_offload(mode, "cpu", 64 * GB, 0) == "none"
    assert OFFLOAD_MODES[0] == "auto"
    with pytest.raises(UnsupportedError, match="offload 'half': use one of auto, none, model, group, sequential"):
        choose_offload("half", "cuda", 1, 1)


def test_the_engine_refuses_an_unknown_mode_and_runs_on_the_cpu_without_offload(tmp_path):
    from family_jobs import Jobs, run1

    from invoke_core.engine import Engine

    with pytest.raises(UnsupportedError, match="offload 'fast'"):
        Engine(root=tmp_path, device="cpu", offload="fast")
    engine = Engine(root=tmp_path, device="cpu", offload="group")
    result = run1(engine, Jobs("demo", cfg_scale=7.5).doc(size=32, steps=1))[0]
    assert "offload" not in result.metadata and engine.cache.get(engine.resolve_model("demo"), engine.device).offload == "none"
