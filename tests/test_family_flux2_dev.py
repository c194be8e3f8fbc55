"""FLUX.2 [dev] through the family seam, on the tiny random-weight `demo-flux2-dev` (a small Mistral 3 read
at layers 10, 20 and 30, a tokenizer of Mistral's shape built in code, FLUX.2's MMDiT with guidance
embedding and its batch-normalised VAE): text to image on its pipeline, image to image, inpaint and
outpaint on the generic flow path over it, reference layers on every task, regions at the attention level,
LoRA told from Klein's, and its rules as clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from family_jobs import Jobs, inpaint_layers, region_layer, run1

from invoke_core import families
from invoke_core.errors import UnsupportedError
from invoke_core.types import Layer, LayerKind, LoraSpec

MODEL = "demo-flux2-dev"


jobs = Jobs(MODEL, cfg_scale=4.0)
params, doc = jobs.params, jobs.doc


def reference_layer(layer_id: str = "ref", seed: int = 3) -> Layer:
    from conftest import rgba

    return Layer(layer_id, LayerKind.REFERENCE, 300, 0, rgba(48, 80, seed=seed))


def test_the_demo_is_flux2_dev_with_a_mistral_encoder_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert (record.family, record.kind) == ("flux2-dev", "main") and "random weights" in record.description
    pipe = engine.cache.get(record, engine.device).model
    assert type(pipe).__name__ == "Flux2Pipeline" and type(pipe.text_encoder).__name__ == "Mistral3ForConditionalGeneration"
    assert pipe.text_encoder.config.text_config.num_hidden_layers == 30, "it reads layers 10, 20 and 30"
    family = families.get("flux2-dev")
    assert (family.defaults.steps, family.guidance_label, "negative_prompt" in family.features) == (50, "Guidance", False)
    assert families.get(engine.resolve_model("demo-flux2").family).label == "FLUX.2 [klein]"


def test_txt2img_is_the_pipelines_own_and_its_guidance_is_an_input(engine):
    import torch
    from diffusers import Flux2Pipeline

    seen = []
    ours = run1(engine, doc(seed=5), on_progress=seen.append)[0]
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)
    raw = Flux2Pipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", guidance_scale=4.0, num_inference_steps=3, width=64, height=64,
                  generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    assert not np.array_equal(run1(engine, doc(seed=5, cfg_scale=1.5))[0].image, ours.image), "the guidance embedding steers"


def test_img2img_inpaint_and_outpaint_run_on_the_generic_flow_path(engine):
    from conftest import rgba

    layers, init, outside = inpaint_layers()
    img2img = run1(engine, doc(layers[:1], strength=0.6, steps=5))[0]
    assert img2img.metadata["mode"] == "img2img" and not np.array_equal(img2img.image, init[..., :3])
    weak = run1(engine, doc(layers[:1], strength=0.2, steps=5))[0]
    assert not np.array_equal(weak.image, img2img.image), "the strength counts (the random VAE reconstructs nothing, so no distance)"
    inpaint = run1(engine, doc(layers, strength=0.8))[0]
    assert inpaint.metadata["mode"] == "inpaint" and np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image[~outside], init[..., :3][~outside])
    assert np.array_equal(run1(engine, doc(layers, strength=0.8))[0].image, inpaint.image), "same seed, same pixels"
    top = rgba(32, 64, seed=4)
    outpaint = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, top)], strength=1.0, infill="telea"))[0]
    assert outpaint.metadata["mode"] == "outpaint" and np.array_equal(outpaint.image[:32], top[..., :3])


def test_reference_layers_steer_every_task(engine):
    plain = run1(engine, doc(steps=2))[0]
    ours = run1(engine, doc([reference_layer()], steps=2))[0]
    assert ours.metadata["references"] == [{"layer_id": "ref", "width": 80, "height": 48, "weight": 1.0, "begin": 0.0, "end": 1.0}]
    assert not np.array_equal(ours.image, plain.image)
    two = run1(engine, doc([reference_layer(), reference_layer("ref2", seed=9)], steps=2))[0]
    assert len(two.metadata["references"]) == 2 and not np.array_equal(two.image, ours.image)
    layers, init, outside = inpaint_layers()
    inpaint = run1(engine, doc([*layers, reference_layer(), reference_layer("ref2", seed=9)], strength=0.8, steps=2))[0]
    assert inpaint.metadata["mode"] == "inpaint" and len(inpaint.metadata["references"]) == 2, "several, on the flow path too"
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image, run1(engine, doc(layers, strength=0.8, steps=2))[0].image)


def test_image_tokens_outside_a_region_give_its_text_zero_attention_with_references(engine, monkeypatch):
    import torch
    from family_jobs import record_attention, regional_call

    from invoke_core.compile import compile_canvas

    request = compile_canvas(doc([region_layer(), reference_layer()], steps=2))
    pipe, args, _bias = regional_call(engine, MODEL, request)
    assert "negative_prompt_embeds" not in args, "guidance-distilled: one branch"
    inputs = families.get("flux2-dev").reference_inputs(pipe, request, {"width": 64, "height": 64})
    calls = record_attention(monkeypatch)
    with torch.inference_mode():
        pipe(**args, **inputs, num_inference_steps=2, guidance_scale=4.0, output_type="np", generator=torch.Generator().manual_seed(1))
    tokens = args["prompt_embeds"].shape[1] // 2  # main + one region, each padded to 512
    n_txt, n_img = 2 * tokens, 16
    inside = torch.arange(n_img) % 4 < 2
    config = pipe.transformer.config
    masked = [c for c in calls if c["masked"]]
    assert len(masked) == 2 * (config.num_layers + config.num_single_layers), "every block, each step"
    region_cols = slice(tokens, 2 * tokens)
    for call in masked:
        probs = call["probs"]
        assert probs.shape[-1] == n_txt + n_img + (96 // 16) * (64 // 16), "[text, image, the reference's tokens at 96x64]"
        image_rows = probs[:, :, n_txt : n_txt + n_img]
        assert torch.count_nonzero(image_rows[:, :, ~inside][..., region_cols]) == 0
        assert torch.all(image_rows[:, :, inside][..., region_cols].sum(-1) > 0)
        assert torch.count_nonzero(probs[:, :, n_txt + n_img :, region_cols]) == 0, "references read the main prompt only"


def test_a_dev_lora_is_told_from_a_klein_one_and_changes_the_image(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model
    from invoke_core.model_probe import probe_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    dev = build_transformer_lora(engine.registry.get(MODEL).path, tmp_path / "dev.safetensors", "flux2-dev", seed=1)
    klein = build_transformer_lora(engine.registry.get("demo-flux2").path, tmp_path / "klein.safetensors", "flux2", seed=1)
    assert probe_model(klein).family == "flux2"
    lora = install_model(engine.registry, str(dev), name="dev a")
    assert (lora.family, lora.kind) == ("flux2-dev", "lora")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(lora.id, 1.0),)))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(run1(engine, doc(**small))[0].image, plain.image)


def test_dev_rules_are_clear_in_core_and_the_api(engine, tmp_path):
    from conftest import rgba

    from invoke_core.families.flux2_demo import build_flux2_dev_demo
    from invoke_core.model_install import install_model
    from invoke_core.types import ControlSettings, RegionPrompt
    from server.app import create_app, shutdown

    with pytest.raises(UnsupportedError, match=r"FLUX.2 \[dev\] models have no negative prompts \(they are guidance-distilled\): clear"):
        run1(engine, doc(negative_prompt="fog"))
    region = Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, region_layer().pixels, region=RegionPrompt(prompt="a boat", negative_prompt="fog"))
    with pytest.raises(UnsupportedError, match=r"FLUX.2 \[dev\] models have no negative prompts"):
        run1(engine, doc([region]))
    control = Layer("c", LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=5), control=ControlSettings(model="demo-flux-controlnet", preprocessor="none"))
    with pytest.raises(UnsupportedError, match=r"FLUX.2 \[dev\] models have no ControlNet"):
        run1(engine, doc([control]))
    app = create_app({"root": str(tmp_path / "api"), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        body = {"document": {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [],
                             "params": {"prompt": "p", "negative_prompt": "fog", "model": MODEL, "steps": 2}}}
        r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
        assert r.status_code == 422 and "FLUX.2 [dev] models have no negative prompts" in r.json["message"], r.json
        body["document"]["params"]["negative_prompt"] = ""
        assert client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"}).status_code == 201
    finally:
        shutdown(app)
    folder = build_flux2_dev_demo(tmp_path / "my-dev")
    record = install_model(engine.registry, str(folder), name="my dev")
    try:
        assert (record.family, record.kind) == ("flux2-dev", "main")
        assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "Flux2Pipeline"
    finally:
        engine.registry.remove(record.id)
