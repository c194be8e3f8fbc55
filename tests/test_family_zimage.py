"""Z-Image through the family seam, on the tiny random-weight `demo-zimage` (a small Qwen3 with a chat
template, a single-stream transformer with noise and caption refiners, FLUX.1's VAE) and
`demo-zimage-controlnet` (Fun Controlnet Union 2.x's layout): every canvas mode on its pipelines, its CFG
convention, ControlNet on text to image and inpaint, LoRA, Turbo's defaults, and its rules as clear
errors in the core and through the API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rgba
from family_jobs import Jobs, inpaint_layers, run1
from family_jobs import control_layer as shared_control_layer

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import UnsupportedError
from invoke_core.types import Layer, LayerKind, LoraSpec, RegionPrompt

MODEL = "demo-zimage"
CONTROLNET = "demo-zimage-controlnet"


jobs = Jobs(MODEL, cfg_scale=0.0)
params, doc = jobs.params, jobs.doc


def control_layer(model: str = CONTROLNET, layer_id: str = "c", **kw) -> Layer:
    return shared_control_layer(model, layer_id, **kw)


def test_the_demo_is_a_z_image_turbo_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "z-image" and record.builtin and "random weights" in record.description
    family = families.get("z-image")
    assert (family.model_defaults(record).steps, family.model_defaults(record).cfg_scale) == (9, 0.0), "Turbo's"
    assert (family.defaults.steps, family.defaults.cfg_scale) == (50, 4.0), "base's"
    assert family.describe()["schedulers"] == ["euler"]


def test_txt2img_is_the_plain_pipelines_and_cfg_is_the_pipelines_convention(engine):
    import torch
    from diffusers import ZImagePipeline

    seen = []
    ours = run1(engine, doc(seed=5, cfg_scale=2.0, negative_prompt="fog"), on_progress=seen.append)[0]
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)
    raw = ZImagePipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", negative_prompt="fog", num_inference_steps=3, guidance_scale=2.0, width=64,
                  height=64, generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    off = run1(engine, doc(seed=5))[0]
    assert np.array_equal(off.image, run1(engine, doc(seed=5, negative_prompt="fog"))[0].image), "CFG 0: one branch"
    assert not np.array_equal(off.image, ours.image)


def test_img2img_inpaint_and_outpaint(engine):
    layers, init, outside = inpaint_layers()
    img2img = run1(engine, doc(layers[:1], strength=0.6))[0]
    assert img2img.metadata["mode"] == "img2img" and not np.array_equal(img2img.image, init[..., :3])
    inpaint = run1(engine, doc(layers, strength=0.8))[0]
    assert inpaint.metadata["mode"] == "inpaint"
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image[~outside], init[..., :3][~outside])
    top = rgba(32, 64, seed=4)
    outpaint = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, top)], strength=1.0, infill="telea"))[0]
    assert outpaint.metadata["mode"] == "outpaint" and np.array_equal(outpaint.image[:32], top[..., :3])


def test_a_controlnet_steers_text_to_image_and_inpaint(engine):
    plain = run1(engine, doc(seed=3))[0]
    steered = run1(engine, doc([control_layer()], seed=3))[0]
    assert not np.array_equal(plain.image, steered.image)
    assert steered.metadata["controls"][0]["model"]["id"] == CONTROLNET
    assert np.array_equal(steered.image, run1(engine, doc([control_layer()], seed=3))[0].image)
    layers, init, outside = inpaint_layers()
    inpaint = run1(engine, doc([*layers, control_layer()], strength=1.0))[0]
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image, run1(engine, doc(layers, strength=1.0))[0].image), "the control counts"


def test_z_image_control_mistakes_are_clear(engine, tmp_path):
    layers, _init, _outside = inpaint_layers()
    cases = [
        (doc([*layers, control_layer()], strength=0.5), "repaints the masked area from noise: set strength to 1"),
        (doc([layers[0], control_layer()], strength=0.5), "cannot run img2img with ControlNet"),
        (doc([control_layer(), control_layer(layer_id="d")]), "run one at a time"),
        (doc([control_layer(begin=0.2)]), "act over every step: set begin 0 and end 1"),
        (doc([control_layer(mode="prompt")]), "have no control modes"),
    ]
    for document, message in cases:
        with pytest.raises(UnsupportedError, match=message):
            run1(engine, document)


def test_a_text_to_image_only_controlnet_is_refused_on_inpaint(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.zimage_demo import build_zimage_controlnet_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    first = install_model(engine.registry, str(build_zimage_controlnet_demo(tmp_path / "union-1", inpaints=False)), name="union 1")
    assert (first.family, first.kind) == ("z-image", "controlnet")
    assert run1(engine, doc([control_layer(first.id)], size=32, steps=2))[0].metadata["controls"][0]["model"]["id"] == first.id
    layers, _init, _outside = inpaint_layers()
    with pytest.raises(UnsupportedError, match="steers text to image only"):
        run1(engine, doc([*layers, control_layer(first.id)], strength=1.0))


def test_a_z_image_lora_changes_the_image_and_the_base_model_comes_back(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    lora = install_model(engine.registry, str(build_transformer_lora(engine.registry.get(MODEL).path, tmp_path / "z.safetensors", "z-image", seed=1)), name="z a")
    assert (lora.family, lora.kind) == ("z-image", "lora")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(lora.id, 1.0),)))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(run1(engine, doc(**small))[0].image, plain.image)


def test_regions_are_refused_naming_the_family(engine):
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, :32, 3] = 255
    region = Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt="a red boat"))
    with pytest.raises(UnsupportedError, match="Z-Image models have no regional prompts"):
        run1(engine, doc([region]))


def test_a_z_image_turbo_folder_installs_by_path_with_turbos_defaults(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.zimage_demo import build_zimage_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    turbo = install_model(engine.registry, str(build_zimage_demo(tmp_path / "Z-Image-Turbo")), name="Z-Image Turbo")
    base = install_model(engine.registry, str(build_zimage_demo(tmp_path / "Z-Image")), name="Z-Image")
    assert (turbo.family, turbo.kind) == ("z-image", "main")
    family = families.get("z-image")
    assert family.model_defaults(turbo).steps == 9 and family.model_defaults(base) is None
    result = engine.run(compile_canvas(doc(model=turbo.id, size=32, steps=2)))[0]
    assert result.image.shape == (32, 32, 3) and result.metadata["model"]["family"] == "z-image"
