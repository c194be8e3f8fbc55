"""The fast path's switches (invoke_core/fast_path.py) on the CPU: the setting's parsing, and on the demo
fused QKV projections, channels_last and torch.compile (backend "eager", which checks the wiring; the
inductor path is measured on a GPU by bench/gpu.py) give the plain path's pixels, keep LoRA and regional
jobs right (they run on the separate projections) and say when a size compiles for the first time."""

from __future__ import annotations

import numpy as np
import pytest

from invoke_core.compile import compile_canvas
from invoke_core.errors import UnsupportedError
from invoke_core.fast_path import DEFAULT_SWITCHES, parse_fast_path
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind, LoraSpec, RegionPrompt

SWITCHED = "channels_last,fused_qkv,compile"


def test_the_setting_parses_to_switches():
    assert not parse_fast_path("auto", "cpu") and parse_fast_path("auto", "cuda:1").switches == DEFAULT_SWITCHES
    assert parse_fast_path(None, "cuda").switches == DEFAULT_SWITCHES
    assert parse_fast_path("on", "cpu").switches == DEFAULT_SWITCHES and not parse_fast_path("off", "cuda")
    assert parse_fast_path("fused_qkv, channels_last", "cuda").switches == {"fused_qkv", "channels_last"}
    assert parse_fast_path("cuda_graphs", "cuda").switches == {"cuda_graphs", "compile"}  # graphs need the compiled module
    assert parse_fast_path("off", "cpu", backend="eager").switches == {"compile"}  # --compile BACKEND turns it on
    with pytest.raises(UnsupportedError, match="warp_drive"):
        parse_fast_path("compile,warp_drive", "cuda")


def test_the_server_config_refuses_an_unknown_switch(tmp_path):
    from server.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="fast path"):
        load_config({"root": tmp_path, "fast_path": "turbo"})
    assert load_config({"root": tmp_path, "fast_path": "fused_qkv"}).fast_path == "fused_qkv"


def _request(size=64, seed=5, layers=(), **kw):
    params = GenerationParams(prompt="a lighthouse at dusk", model="demo", steps=3, seed=seed, cfg_scale=5.0, **kw)
    return compile_canvas(CanvasDocument(Bounds(0, 0, size, size), tuple(layers), params))


def _close(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (fused matmuls sum in another order: a few 1e-7 apart)."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.fixture(scope="module")
def fast_engine(data_root):
    from invoke_core.engine import Engine

    return Engine(root=data_root, device="cpu", fast_path=SWITCHED, compile_backend="eager")


def test_fast_path_gives_the_plain_pixels_and_says_when_it_compiles(engine, fast_engine):
    seen = []
    fast = fast_engine.run(_request(), on_progress=seen.append)[0]
    plain = engine.run(_request())[0]
    assert fast.metadata["fast_path"] == ["channels_last", "compile", "fused_qkv"]
    assert "fast_path" not in plain.metadata
    assert _close(fast.image, plain.image) <= 0.5, "within rounding of the plain path"
    assert seen[0].phase == "compiling" and seen[0].step == 0 and [p.step for p in seen[1:]] == [1, 2, 3]

    again = []
    fast_engine.run(_request(seed=6), on_progress=again.append)
    assert [p.phase for p in again] == [None] * 3, "the same size compiles once"
    other = []
    fast_engine.run(_request(size=96), on_progress=other.append)
    assert other[0].phase == "compiling", "a new size is reported"

    pipe = fast_engine.cache.get(fast_engine.registry.get("demo"), fast_engine.device).model
    unet = pipe.unet
    assert type(unet).__name__ == "UNet2DConditionModel", "the cached module stays plain; the job's pipeline held the compiled one"
    assert any(type(p).__name__.startswith("Fused") for p in unet.attn_processors.values())
    assert unet.conv_in.weight.is_contiguous(memory_format=__import__("torch").channels_last)
    attention = next(m for m in unet.modules() if getattr(m, "to_qkv", None) is not None)
    fused_at = attention.to_qkv.weight.untyped_storage().data_ptr()
    assert {p.weight.untyped_storage().data_ptr() for p in (attention.to_q, attention.to_k, attention.to_v)} == {fused_at}, \
        "the separate projections are views of the fused weights: one copy in memory"


def test_lora_and_regional_jobs_run_on_the_separate_projections(tmp_path, engine, fast_engine):
    from invoke_core.demo_lora import build_lora
    from invoke_core.model_install import install_model

    lora = install_model(engine.registry, str(build_lora(engine.registry.get("demo").path, tmp_path / "fp.safetensors", seed=3))).id
    try:
        with_lora = dict(loras=(LoraSpec(lora, 1.0),))
        fast, plain = fast_engine.run(_request(**with_lora))[0], engine.run(_request(**with_lora))[0]
        assert "compile" not in fast.metadata.get("fast_path", []) and "fused_qkv" not in fast.metadata.get("fast_path", [])
        assert _close(fast.image, plain.image) <= 0.5, "the LoRA acts as on the plain path (not bypassed by fused q/k/v)"
        assert _close(fast.image, engine.run(_request())[0].image) > 1, "and it does act"
        unet = fast_engine.cache.get(fast_engine.registry.get("demo"), fast_engine.device).model.unet
        after = fast_engine.run(_request())[0]  # a plain job again: fused and compiled again, LoRA gone
        assert after.metadata["fast_path"] == ["channels_last", "compile", "fused_qkv"]
        assert _close(after.image, engine.run(_request())[0].image) <= 0.5
        assert any(type(p).__name__.startswith("Fused") for p in unet.attn_processors.values())
    finally:
        engine.registry.remove(lora)

    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, :32, 3] = 255
    region = Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt("a red door"))
    fast, plain = fast_engine.run(_request(layers=(region,)))[0], engine.run(_request(layers=(region,)))[0]
    assert _close(fast.image, plain.image) <= 0.5 and fast.metadata["regions"]["items"][0]["use"] == "region"
