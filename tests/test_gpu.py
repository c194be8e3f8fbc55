"""The CUDA paths: half precision, bf16, regions, ControlNet, LoRA, compel and torch.compile on a real GPU.

Skipped where torch sees no CUDA device (every CI machine); run on a lent GPU with `scripts/gpu_check.sh`.
Pixels on a GPU differ from the CPU's in the last bits, so these tests compare within tolerances, except
where our own code promises exactness (paste-back outside the mask, base weights after a LoRA job).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import rgba

from invoke_core.compile import compile_canvas
from invoke_core.types import (
    Bounds,
    CanvasDocument,
    ControlSettings,
    GenerationParams,
    Layer,
    LayerKind,
    LoraSpec,
    RegionPrompt,
)

# INVOKE_CANVAS_TEST_DEVICE=cpu runs the same checks on the CPU in float32 (to check the tests themselves).
DEVICE = os.environ.get("INVOKE_CANVAS_TEST_DEVICE", "cuda")
DTYPES = ["float16", "bfloat16", "float32"] if DEVICE.startswith("cuda") else ["float32"]
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(),
    reason="needs a CUDA GPU: run scripts/gpu_check.sh on a machine with one",
)

SIZE = 64


def params(**kw) -> GenerationParams:
    base = dict(prompt="a lighthouse at dusk", steps=3, seed=7, cfg_scale=5.0, mask_blur=0, infill="telea")
    base.update(kw)
    return GenerationParams(**base)


def run1(engine, layers=(), **kw):
    return engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), tuple(layers), params(**kw))))[0]


def alive(image: np.ndarray) -> bool:
    """Not black, not one flat colour: NaNs in half precision come out as a flat image."""
    return image.dtype == np.uint8 and image.std() > 1.0


@pytest.fixture(scope="module", params=DTYPES)
def gpu(request, tmp_path_factory):
    from invoke_core.engine import Engine

    return Engine(root=tmp_path_factory.mktemp(f"gpu-{request.param}"), device=DEVICE, dtype=request.param)


def test_txt2img_on_cuda_is_reproducible_and_close_to_the_cpu(gpu, engine):
    a, b = run1(gpu), run1(gpu)
    assert alive(a.image) and a.metadata["device"] == DEVICE and a.metadata["dtype"] == gpu.device.dtype
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 2  # same seed, same GPU
    cpu = run1(engine)
    tolerance = 3 if gpu.device.dtype == "float32" else 24  # mean absolute difference, of 255
    assert np.abs(a.image.astype(float) - cpu.image.astype(float)).mean() <= tolerance


def test_inpaint_region_control_and_lora_on_cuda(gpu, tmp_path):
    from invoke_core.demo_lora import build_lora
    from invoke_core.model_install import install_model

    lora = install_model(gpu.registry, str(build_lora(Path(gpu.registry.get("demo").path), tmp_path / "l.safetensors", seed=1)))
    init = rgba(SIZE, SIZE, seed=3)
    mask = np.zeros((SIZE, SIZE, 4), np.uint8)
    mask[:32, :, 3] = 255
    region = np.zeros((SIZE, SIZE, 4), np.uint8)
    region[:, :32, 3] = 255
    control = np.zeros((SIZE, SIZE, 4), np.uint8)
    control[16:48, 16:48] = 255
    layers = [
        Layer("img", LayerKind.RASTER, 0, 0, init),
        Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask),
        Layer("reg", LayerKind.REGIONAL_GUIDANCE, 0, 0, region, region=RegionPrompt("a (red)1.3 boat", "fog", 0.7)),
        Layer("ctl", LayerKind.CONTROL, 0, 0, control, control=ControlSettings("demo-controlnet", "canny")),
    ]
    pipe = gpu.cache.get(gpu.registry.get("demo"), gpu.device).model
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    plain = run1(gpu, layers, strength=1.0)
    styled = run1(gpu, layers, strength=1.0, loras=(LoraSpec(lora.id, 0.8),))
    for result in (plain, styled):
        assert alive(result.image) and result.metadata["mode"] == "inpaint"
        assert np.array_equal(result.image[32:], init[32:, :, :3])  # outside the mask: the init's pixels
    assert not np.array_equal(plain.image, styled.image)
    again = run1(gpu, layers, strength=1.0)  # unloads the LoRA first
    assert np.abs(again.image.astype(int) - plain.image.astype(int)).max() <= 2
    after = pipe.unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_regional_attention_masks_at_every_resolution_in_half_precision(gpu):
    from invoke_core.attention import RegionalAttnProcessor, regional_attention
    from invoke_core.prompts import encode_regional_prompts
    from invoke_core.types import Mode

    record = gpu.resolve_model("demo")
    pipe, _ = gpu.pipeline_for(gpu.cache.get(record, gpu.device).model, record, Mode.TXT2IMG)
    masks = np.zeros((1, SIZE, SIZE), np.float32)
    masks[0, :, :24] = 1
    embeds, tokens = encode_regional_prompts(pipe, "sd-1", "a harbour", "", [("a boat", "")], True)
    record_list: list = []
    processor = RegionalAttnProcessor(masks, tokens, (SIZE // 8, SIZE // 8), [0.8], record=record_list)
    with regional_attention([pipe.unet], processor), torch.inference_mode():
        image = pipe(**embeds, num_inference_steps=2, guidance_scale=5.0, width=SIZE, height=SIZE,
                     generator=torch.Generator().manual_seed(1), output_type="np").images[0]
    assert np.isfinite(image).all()
    for entry in record_list:
        h, w = entry["size"]
        probs = entry["probs"]
        small = masks[0].reshape(h, SIZE // h, w, SIZE // w).mean(axis=(1, 3)).reshape(-1)
        region = probs[..., tokens[0]:].sum(-1)
        assert torch.isfinite(probs).all() and (region[..., small == 0] == 0).all()


def test_sdxl_weighted_prompts_in_half_precision(gpu, sdxl_folder):
    from invoke_core.model_install import install_model

    record = install_model(gpu.registry, str(sdxl_folder), name="tiny sdxl on the gpu")
    try:
        plain = run1(gpu, model=record.id, steps=2)
        weighted = run1(gpu, model=record.id, steps=2, prompt="a (lighthouse)1.4 at dusk")
        assert alive(plain.image) and alive(weighted.image)  # SDXL's VAE upcasts where fp16 would overflow
        assert not np.array_equal(plain.image, weighted.image)
    finally:
        gpu.registry.remove(record.id)


@pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="inductor is checked on the GPU")
def test_inductor_compile_matches_eager(tmp_path):
    from invoke_core.engine import Engine

    eager = Engine(root=tmp_path / "eager", device=DEVICE)
    compiled = Engine(root=tmp_path / "compiled", device=DEVICE, compile_backend="inductor")
    a, b = run1(eager), run1(compiled)
    assert alive(b.image) and np.abs(a.image.astype(int) - b.image.astype(int)).mean() <= 2
    c = run1(compiled, loras=())  # a second job on the compiled UNet: no recompilation error
    assert np.abs(b.image.astype(int) - c.image.astype(int)).max() <= 2


@pytest.mark.parametrize("mode", ["model", "group", "sequential"])
def test_an_offloaded_model_gives_the_pixels_of_one_on_the_card(tmp_path, mode):
    """Forced offload on the demo: its weights stay in RAM, stream to the card per job, and the image is the
    one the card-resident model makes (within half-precision noise); the hooks come off after the job."""
    from invoke_core.engine import Engine

    if not DEVICE.startswith("cuda"):
        pytest.skip("offload needs a CUDA device")
    resident = Engine(root=tmp_path / "on", device=DEVICE, dtype="float16")
    streamed = Engine(root=tmp_path / "off", device=DEVICE, dtype="float16", offload=mode)
    a, b = run1(resident), run1(streamed)
    assert b.metadata["offload"] == mode and "offload" not in a.metadata and alive(b.image)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() <= 2
    loaded = streamed.cache.get(streamed.registry.get("demo"), streamed.device)
    assert loaded.offload == mode and next(loaded.model.unet.parameters()).device.type == "cpu", "back in RAM after the job"
    assert np.array_equal(run1(streamed).image, b.image), "a second job: the same"


@pytest.mark.parametrize("storage", ["nf4", "int8"])
def test_bitsandbytes_weights_make_an_image_with_a_smaller_denoiser(tmp_path, storage):
    """The per-model option quantises the denoiser as it loads (bitsandbytes, computing in bf16): it takes
    less than half its bf16 bytes, the image is alive and the same from job to job."""
    from invoke_core.engine import Engine

    if not DEVICE.startswith("cuda"):
        pytest.skip("bitsandbytes quantises on a CUDA device")
    pytest.importorskip("bitsandbytes")
    engine = Engine(root=tmp_path, device=DEVICE, dtype="bfloat16")
    native = run1(engine)
    unet = {c.key: c.size_bytes for c in engine.cache.stats().components if c.name == "unet"}
    engine.registry.set_options("demo", weights=storage)
    first, again = run1(engine), run1(engine)
    stored = {c.key: c.size_bytes for c in engine.cache.stats().components if c.key.endswith(f"|{storage}")}
    assert len(stored) == 1 and next(iter(stored.values())) < next(iter(unet.values())) * (0.6 if storage == "int8" else 0.4), (unet, stored)
    assert alive(first.image) and first.image.shape == native.image.shape
    assert np.array_equal(first.image, again.image)
