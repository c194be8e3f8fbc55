"""The family x mode x feature table of the transformer families (flux, sd-3, hidream, chroma, z-image, qwen-image, flux2,
flux2-dev) on their tiny demos,
through invoke_core.run: each cell runs twice (same seed, same pixels), keeps every pixel outside the mask
in inpaint and outpaint (blur 0), and records its feature in the metadata; a cell the family cannot run
is a clear error naming it. The table the issue note reports is this one (`REFUSED`: what does not run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import rgba

from invoke_core.compile import compile_canvas
from invoke_core.errors import UnsupportedError
from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LayerKind, LoraSpec, RegionPrompt

SIZE = 32
MODES = ("txt2img", "img2img", "inpaint", "outpaint")
FEATURES = ("plain", "region", "controlnet", "lora", "long_prompt")
DEMOS = {
    "flux": ("demo-flux", "demo-flux-controlnet", 3.5),
    "sd-3": ("demo-sd3", "demo-sd3-controlnet", 4.5),
    # img2img, inpaint and outpaint on the generic flow-matching path (invoke_core/flow_tasks.py)
    "hidream": ("demo-hidream", None, 5.0),
    # inpaint and outpaint on the generic path (diffusers 0.42's ChromaInpaintPipeline cannot run Chroma)
    "chroma": ("demo-chroma", None, 3.0),
    "z-image": ("demo-zimage", "demo-zimage-controlnet", 4.0),
    "qwen-image": ("demo-qwen", "demo-qwen-controlnet", 4.0),
    # img2img on its inpaint pipeline with the whole box masked
    "flux2": ("demo-flux2", None, 4.0),
    # img2img, inpaint and outpaint on the generic flow-matching path
    "flux2-dev": ("demo-flux2-dev", None, 4.0),
}
# SD 3 inpaints and outpaints with an inpainting ControlNet (from noise: strength 1)
INPAINTING = {"sd-3": "demo-sd3-inpaint-controlnet", "z-image": "demo-zimage-controlnet"}
# what does not run, and the message that says so (diffusers has no SD 3 or Z-Image ControlNet img2img)
REFUSED = {
    ("sd-3", "img2img", "controlnet"): "cannot run img2img with ControlNet",
    ("z-image", "img2img", "controlnet"): "cannot run img2img with ControlNet",
    ("qwen-image", "img2img", "controlnet"): "cannot run img2img with ControlNet",
    # inpaint and outpaint take an inpainting ControlNet (test_family_qwenimage.py)
    ("qwen-image", "inpaint", "controlnet"): "Qwen-Image ControlNets steer text to image",
    ("qwen-image", "outpaint", "controlnet"): "Qwen-Image ControlNets steer text to image",
}
for _mode in MODES:  # HiDream-I1: no regional prompts or ControlNets yet (none in diffusers)
    REFUSED[("hidream", _mode, "region")] = "HiDream-I1 models have no regional prompts"
    REFUSED[("hidream", _mode, "controlnet")] = "HiDream-I1 models have no ControlNet"
    REFUSED[("chroma", _mode, "controlnet")] = "Chroma models have no ControlNet"
    REFUSED[("z-image", _mode, "region")] = "Z-Image models have no regional prompts"
    REFUSED[("qwen-image", _mode, "region")] = "Qwen-Image models have no regional prompts"
    REFUSED[("flux2", _mode, "controlnet")] = "FLUX.2 \\[klein\\] models have no ControlNet"
    REFUSED[("flux2-dev", _mode, "controlnet")] = "FLUX.2 \\[dev\\] models have no ControlNet"
LONG = " ".join(["a detailed painting of a lighthouse at dusk with a red boat on the blue sea"] * 8)


@pytest.fixture(scope="module")
def table_engine(tmp_path_factory):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    tmp = tmp_path_factory.mktemp("table")
    engine = Engine(root=tmp / "root", device="cpu")  # its own registry for the LoRA installs
    loras = {}
    for family, (model, _cn, _g) in DEMOS.items():
        folder = Path(engine.registry.get(model).path)
        file = build_transformer_lora(folder, tmp / f"{family}.safetensors", family, seed=3)
        loras[family] = install_model(engine.registry, str(file), name=f"{family} table lora").id
    engine.table_loras = loras
    return engine


def document(family: str, mode: str, feature: str, loras: dict[str, str]) -> tuple[CanvasDocument, np.ndarray | None]:
    model, controlnet, guidance = DEMOS[family]
    strength = 0.8
    if feature == "controlnet" and mode in ("inpaint", "outpaint") and family in INPAINTING:
        controlnet, strength = INPAINTING[family], 1.0
    layers: list[Layer] = []
    keep = None  # pixels that must come back unchanged
    if mode != "txt2img":
        init = rgba(SIZE, SIZE, seed=1)
        if mode == "outpaint":
            init[SIZE // 2 :, :, 3] = 0  # the bottom half is empty
        layers.append(Layer("img", LayerKind.RASTER, 0, 0, init))
        keep = np.zeros((SIZE, SIZE), bool)
        if mode == "inpaint":
            mask = np.zeros((SIZE, SIZE, 4), np.uint8)
            mask[8:24, 8:24, 3] = 255
            layers.append(Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask))
            keep[:] = True
            keep[8:24, 8:24] = False
        elif mode == "outpaint":
            keep[: SIZE // 2] = True
    if feature == "region":
        pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
        pixels[:, : SIZE // 2, 3] = 255
        layers.append(Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt="a red boat")))
    if feature == "controlnet":
        control = ControlSettings(model=controlnet or "demo-flux-controlnet", preprocessor="none")
        layers.append(Layer("c", LayerKind.CONTROL, 0, 0, rgba(SIZE, SIZE, seed=5), control=control))
    params = GenerationParams(
        prompt=LONG if feature == "long_prompt" else "a lighthouse at dusk",
        model=model, steps=2, seed=11, cfg_scale=guidance, strength=strength, mask_blur=0, infill="color",
        loras=(LoraSpec(loras[family], 1.0),) if feature == "lora" else (),
    )
    return CanvasDocument(Bounds(0, 0, SIZE, SIZE), tuple(layers), params), keep


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", sorted(DEMOS))
def test_family_mode_feature(table_engine, family, mode, feature):
    doc, keep = document(family, mode, feature, table_engine.table_loras)
    refused = REFUSED.get((family, mode, feature))
    if refused:
        with pytest.raises(UnsupportedError, match=refused):
            table_engine.run(compile_canvas(doc))
        return
    a = table_engine.run(compile_canvas(doc))[0]
    b = table_engine.run(compile_canvas(doc))[0]
    assert np.array_equal(a.image, b.image), "same seed, same pixels"
    meta = a.metadata
    assert meta["mode"] == mode and meta["model"]["family"] == family
    if keep is not None:
        original = doc.layers[0].pixels[..., :3]
        assert np.array_equal(a.image[keep], original[keep]), "outside the mask: byte-identical"
    if feature == "region":
        assert meta["regions"]["items"][0]["use"] == "region"
    if feature == "controlnet":
        assert meta["controls"][0]["model"]["family"] == family
        assert meta["controls"][0]["model"]["id"] == doc.layers[-1].control.model
    if feature == "lora":
        assert meta["loras"][0]["id"] == table_engine.table_loras[family]


def test_flux_reads_a_prompt_beyond_clips_77_tokens_through_t5(table_engine):
    """Two prompts that agree on their first 100 words (CLIP sees 77 tokens) and differ after: T5 reads on."""
    words = LONG.split()[:100]
    base = CanvasDocument(Bounds(0, 0, SIZE, SIZE), (), GenerationParams(prompt=" ".join(words + ["cat"]), model="demo-flux", steps=2, seed=3, cfg_scale=3.5))
    other = CanvasDocument(Bounds(0, 0, SIZE, SIZE), (), GenerationParams(prompt=" ".join(words + ["dog"]), model="demo-flux", steps=2, seed=3, cfg_scale=3.5))
    a = table_engine.run(compile_canvas(base))[0]
    b = table_engine.run(compile_canvas(other))[0]
    assert not np.array_equal(a.image, b.image)
