"""Qwen-Image through the family seam, on the tiny random-weight `demo-qwen` (a small Qwen2.5-VL whose
tokenizer drops the same 34-token template prefix as the released one, an MMDiT of two blocks, its causal
3D VAE) and `demo-qwen-controlnet`: every canvas mode on its pipelines, its true CFG, ControlNets and
inpainting ControlNets, LoRA told from FLUX.1's, and its rules as clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import rgba
from family_jobs import Jobs, inpaint_layers, run1
from family_jobs import control_layer as shared_control_layer

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import ModelInstallError, UnsupportedError
from invoke_core.types import Layer, LayerKind, LoraSpec, RegionPrompt

MODEL = "demo-qwen"
CONTROLNET = "demo-qwen-controlnet"


jobs = Jobs(MODEL, cfg_scale=4.0)
params, doc = jobs.params, jobs.doc


def control_layer(model: str = CONTROLNET, layer_id: str = "c", **kw) -> Layer:
    return shared_control_layer(model, layer_id, **kw)


def test_the_demo_is_a_qwen_image_model_labelled_random_weights_whose_template_prefix_is_34_tokens(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "qwen-image" and record.builtin and "random weights" in record.description
    pipe = engine.cache.get(record, engine.device).model
    prefix = pipe.prompt_template_encode.split("{}")[0]
    assert len(pipe.tokenizer(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 34
    assert families.get("qwen-image").describe()["schedulers"] == ["euler"]


def test_txt2img_is_the_plain_pipelines_with_true_cfg(engine):
    import torch
    from diffusers import QwenImagePipeline

    seen = []
    ours = run1(engine, doc(seed=5, negative_prompt="fog"), on_progress=seen.append)[0]
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)
    raw = QwenImagePipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", negative_prompt="fog", true_cfg_scale=4.0, num_inference_steps=3, width=64,
                  height=64, generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    one = run1(engine, doc(seed=5, cfg_scale=1.0))[0]
    assert np.array_equal(one.image, run1(engine, doc(seed=5, cfg_scale=1.0, negative_prompt="fog"))[0].image), "CFG 1: one branch"
    assert not np.array_equal(run1(engine, doc(seed=5))[0].image, one.image), "an empty negative prompt still runs CFG"


def test_img2img_inpaint_and_outpaint(engine):
    layers, init, outside = inpaint_layers()
    img2img = run1(engine, doc(layers[:1], strength=0.6))[0]
    assert img2img.metadata["mode"] == "img2img" and not np.array_equal(img2img.image, init[..., :3])
    inpaint = run1(engine, doc(layers, strength=0.8))[0]
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image[~outside], init[..., :3][~outside])
    top = rgba(32, 64, seed=4)
    outpaint = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, top)], strength=1.0, infill="telea"))[0]
    assert outpaint.metadata["mode"] == "outpaint" and np.array_equal(outpaint.image[:32], top[..., :3])


def test_a_controlnet_steers_text_to_image_one_at_a_time(engine):
    plain = run1(engine, doc(seed=3))[0]
    one = run1(engine, doc([control_layer()], seed=3))[0]
    weaker = run1(engine, doc([control_layer(weight=0.5)], seed=3))[0]
    assert not np.array_equal(plain.image, one.image) and not np.array_equal(one.image, weaker.image)
    assert one.metadata["controls"][0]["model"]["id"] == CONTROLNET
    with pytest.raises(UnsupportedError, match="Qwen-Image ControlNets run one at a time"):
        run1(engine, doc([control_layer(), control_layer(layer_id="d")]))


def test_an_inpainting_controlnet_repaints_the_mask_from_the_canvas_and_its_mistakes_are_clear(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.qwenimage_demo import build_qwenimage_controlnet_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    folder = build_qwenimage_controlnet_demo(tmp_path / "inpainting", Path(engine.registry.get(MODEL).path), inpainting=True)
    inpainting = install_model(engine.registry, str(folder), name="qwen inpainting").id
    layers, init, outside = inpaint_layers()
    result = run1(engine, doc([*layers, control_layer(inpainting)], strength=1.0))[0]
    assert np.array_equal(result.image[outside], init[..., :3][outside])
    assert not np.array_equal(result.image[~outside], init[..., :3][~outside])
    assert result.metadata["controls"][0]["model"]["id"] == inpainting
    for document, message in (
        (doc([*layers, control_layer(inpainting)], strength=0.5), "repaints the masked area from noise: set strength to 1"),
        (doc([control_layer(inpainting)], strength=1.0), "repaints a mask: paint an inpaint mask"),
        (doc([*layers, control_layer(inpainting, preprocessor="canny")], strength=1.0), "set its preprocessor to none"),
        (doc([*layers, control_layer(inpainting), control_layer(layer_id="d")], strength=1.0), "runs alone"),
        (doc([*layers, control_layer()], strength=1.0), "inpaint and outpaint take a Qwen-Image inpainting ControlNet"),
    ):
        with pytest.raises(UnsupportedError, match=message):
            run1(engine, document)


def test_a_qwen_image_lora_is_told_from_a_flux_one_and_changes_the_image(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    lora = install_model(engine.registry, str(build_transformer_lora(engine.registry.get(MODEL).path, tmp_path / "q.safetensors", "qwen-image", seed=1)), name="qwen a")
    assert (lora.family, lora.kind) == ("qwen-image", "lora")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(lora.id, 1.0),)))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(run1(engine, doc(**small))[0].image, plain.image)


def test_regions_and_layered_models_are_refused_naming_what(engine, tmp_path):
    from invoke_core.families.qwenimage_demo import build_qwenimage_demo
    from invoke_core.model_install import install_model

    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, :32, 3] = 255
    region = Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt="a red boat"))
    with pytest.raises(UnsupportedError, match="Qwen-Image models have no regional prompts"):
        run1(engine, doc([region]))
    folder = build_qwenimage_demo(tmp_path / "layered")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "QwenImageLayeredPipeline"}))
    with pytest.raises(ModelInstallError, match="QwenImageLayeredPipeline models .* are not supported yet"):
        install_model(engine.registry, str(folder), name="layered")
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "QwenImageEditPipeline"}))
    with pytest.raises(ModelInstallError, match="without processor/preprocessor_config.json"):
        install_model(engine.registry, str(folder), name="edit")


EDIT = "demo-qwen-edit"


def raster(seed: int = 1) -> Layer:
    return Layer("img", LayerKind.RASTER, 0, 0, rgba(64, 64, seed=seed))


def test_the_edit_demo_drops_the_64_token_prefix_of_its_template(engine):
    record = engine.resolve_model(EDIT)
    assert (record.family, record.kind) == ("qwen-image", "edit") and "random weights" in record.description
    pipe = engine.cache.get(record, engine.device).model
    assert type(pipe).__name__ == "QwenImageEditPipeline"
    prefix = pipe.prompt_template_encode.split("<|vision_start|>")[0]
    assert len(pipe.tokenizer(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 64


def test_an_edit_model_edits_the_picture_under_the_box_as_the_raw_pipeline_does(engine):
    import torch
    from diffusers import QwenImageEditPipeline
    from PIL import Image

    instruction = dict(model=EDIT, prompt="make the sky red", steps=2, negative_prompt="fog")
    a = run1(engine, doc([raster(seed=1)], **instruction))[0]
    assert a.metadata["mode"] == "edit" and a.image.shape == (64, 64, 3)
    raw = QwenImageEditPipeline(**engine.cache.get(engine.resolve_model(EDIT), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(image=Image.fromarray(raster(seed=1).pixels[..., :3]), prompt="make the sky red", negative_prompt="fog",
                  true_cfg_scale=4.0, num_inference_steps=2, width=64, height=64,
                  generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    assert np.array_equal(a.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    other = run1(engine, doc([raster(seed=2)], **instruction))[0]
    assert not np.array_equal(a.image, other.image), "the picture steers the edit"
    # a mask keeps the edit inside it; asking for an edit is the same job
    layers, init, outside = inpaint_layers()
    masked = run1(engine, doc(layers, **instruction, edit=True))[0]
    assert masked.metadata["mode"] == "edit" and np.array_equal(masked.image[outside], init[..., :3][outside])
    assert not np.array_equal(masked.image[~outside], init[..., :3][~outside])


def test_what_a_qwen_edit_cannot_do_is_a_clear_error(engine):
    with pytest.raises(UnsupportedError, match="Qwen-Image edit models edit the picture under the box, and the box is empty"):
        run1(engine, doc([], model=EDIT, steps=2))
    with pytest.raises(UnsupportedError, match="Qwen-Image edit models cannot run edit with ControlNet"):
        run1(engine, doc([raster(), control_layer()], model=EDIT, steps=2))
    with pytest.raises(UnsupportedError, match="'demo-qwen' is a Qwen-Image main model, which cannot run an edit job: .*demo-qwen-edit"):
        run1(engine, doc([raster()], steps=2, edit=True))


def test_an_edit_plus_folder_installs_and_runs_through_its_own_pipeline(engine, tmp_path):
    """Qwen-Image-Edit 2509/2511 folders: the same parts, QwenImageEditPlusPipeline (several pictures)."""
    from diffusers import QwenImageEditPlusPipeline

    from invoke_core.demo import _save_atomically
    from invoke_core.engine import Engine
    from invoke_core.model_install import install_model

    edit = engine.cache.get(engine.resolve_model(EDIT), engine.device).model
    folder = tmp_path / "edit-plus"
    plus = QwenImageEditPlusPipeline(**edit.components)
    plus.register_to_config(processor=("transformers", "Qwen2VLProcessor"))
    _save_atomically(plus, folder)
    mine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(mine.registry, str(folder), name="my edit plus")
    assert (record.family, record.kind) == ("qwen-image", "edit")
    result = run1(mine, doc([raster()], model=record.id, prompt="make the sky red", steps=2))[0]
    assert result.metadata["mode"] == "edit" and result.image.shape == (64, 64, 3)
    assert type(mine.pipeline_for(mine.cache.get(record, mine.device).model, record, result_mode(result))[0]).__name__ == "QwenImageEditPlusPipeline"


def result_mode(result):
    from invoke_core.types import Mode

    return Mode(result.metadata["mode"])


def test_a_qwen_image_folder_installs_by_path_and_runs(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.qwenimage_demo import build_qwenimage_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(engine.registry, str(build_qwenimage_demo(tmp_path / "my-qwen")), name="my qwen")
    assert (record.family, record.kind, record.format) == ("qwen-image", "main", "diffusers")
    result = engine.run(compile_canvas(doc(model=record.id, size=32, steps=2)))[0]
    assert result.image.shape == (32, 32, 3) and result.metadata["model"]["family"] == "qwen-image"
