"""FLUX.2 [klein] through the family seam, on the tiny random-weight `demo-flux2` (a small Qwen3 read at
layers 9, 18 and 27, an MMDiT of one double and one single block, FLUX.2's batch-normalised VAE): every
canvas mode (image to image on the inpaint pipeline, the whole box masked), CFG with a negative prompt
as embeddings, regions at the attention level, LoRA told from FLUX.1's, and its rules as clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import rgba
from family_jobs import Jobs, region_layer, run1

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import ModelInstallError, UnsupportedError
from invoke_core.types import ControlSettings, Layer, LayerKind, LoraSpec

MODEL = "demo-flux2"


jobs = Jobs(MODEL, cfg_scale=4.0)
params, doc = jobs.params, jobs.doc


def test_the_demo_is_a_flux2_klein_base_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "flux2" and record.builtin and "random weights" in record.description
    family = families.get("flux2")
    assert family.model_defaults(record).steps == 50 and family.defaults.steps == 4, "base's own; distilled the family's"


def test_txt2img_is_the_plain_pipelines_and_the_negative_prompt_counts_with_cfg(engine):
    import torch
    from diffusers import Flux2KleinPipeline

    seen = []
    ours = run1(engine, doc(seed=5), on_progress=seen.append)[0]
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)
    raw = Flux2KleinPipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", num_inference_steps=3, guidance_scale=4.0, width=64, height=64,
                  generator=torch.Generator().manual_seed(5), output_type="np", max_sequence_length=512).images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    negative = run1(engine, doc(seed=5, negative_prompt="fog"))[0]
    assert not np.array_equal(negative.image, ours.image)
    off = run1(engine, doc(seed=5, cfg_scale=1.0))[0]
    assert np.array_equal(off.image, run1(engine, doc(seed=5, cfg_scale=1.0, negative_prompt="fog"))[0].image)


def test_img2img_runs_on_the_inpaint_pipeline_with_the_whole_box_and_inpaint_keeps_the_rest(engine):
    init = rgba(64, 64, seed=1)
    layer = [Layer("img", LayerKind.RASTER, 0, 0, init)]
    weak = run1(engine, doc(layer, strength=0.3, steps=4))[0]
    strong = run1(engine, doc(layer, strength=0.9, steps=4))[0]
    assert weak.metadata["mode"] == "img2img"
    # (the random VAE does not reconstruct, so nearness to the image says little here)
    txt2img = run1(engine, doc(steps=4))[0]
    assert len({weak.image.tobytes(), strong.image.tobytes(), txt2img.image.tobytes()}) == 3
    assert np.array_equal(weak.image, run1(engine, doc(layer, strength=0.3, steps=4))[0].image)
    mask = np.zeros((64, 64, 4), np.uint8)
    mask[16:48, 16:48, 3] = 255
    inpaint = run1(engine, doc([*layer, Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask)], strength=1.0))[0]
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image[~outside], init[..., :3][~outside])


def test_image_tokens_outside_a_region_give_its_text_zero_attention(engine, monkeypatch):
    import torch
    from family_jobs import record_attention, regional_call

    request = compile_canvas(doc([region_layer()], steps=2))
    pipe, args, _bias = regional_call(engine, MODEL, request)
    calls = record_attention(monkeypatch)
    with torch.inference_mode():
        pipe(**args, num_inference_steps=2, guidance_scale=4.0, width=64, height=64, output_type="np",
             generator=torch.Generator().manual_seed(1))
    tokens = args["prompt_embeds"].shape[1] // 2  # main + one region, each padded alike
    n_txt, n_img = 2 * tokens, 16
    inside = torch.arange(n_img) % 4 < 2
    config = pipe.transformer.config
    masked = [c for c in calls if c["masked"]]
    assert len(masked) == 2 * 2 * (config.num_layers + config.num_single_layers), "both branches, every block, each step"
    region_cols = slice(tokens, 2 * tokens)
    for call in masked:
        probs = call["probs"]
        image_rows = probs[:, :, n_txt:]
        assert torch.count_nonzero(image_rows[:, :, ~inside][..., region_cols]) == 0
        assert torch.all(image_rows[:, :, inside][..., region_cols].sum(-1) > 0)
        assert torch.count_nonzero(probs[:, :, :tokens, region_cols]) == 0
        assert torch.count_nonzero(probs[:, :, region_cols, n_txt:][..., ~inside]) == 0


def test_a_flux2_lora_is_told_from_a_flux1_one_and_changes_the_image(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    lora = install_model(engine.registry, str(build_transformer_lora(engine.registry.get(MODEL).path, tmp_path / "f2.safetensors", "flux2", seed=1)), name="flux2 a")
    assert (lora.family, lora.kind) == ("flux2", "lora")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(lora.id, 1.0),)))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(run1(engine, doc(**small))[0].image, plain.image)


def test_flux2_rules_are_clear(engine, tmp_path):
    from invoke_core.families.flux2_demo import build_flux2_demo
    from invoke_core.model_install import install_model

    control = Layer("c", LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=5), control=ControlSettings(model="demo-flux-controlnet", preprocessor="none"))
    with pytest.raises(UnsupportedError, match="FLUX.2 \\[klein\\] models have no ControlNet"):
        run1(engine, doc([control]))
    folder = build_flux2_demo(tmp_path / "klein")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "is_distilled": True}))
    record = install_model(engine.registry, str(folder), name="my klein")
    try:
        assert (record.family, families.get("flux2").model_defaults(record).steps) == ("flux2", 4), "distilled: 4 steps"
        (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "Flux2KleinKVPipeline"}))
        with pytest.raises(ModelInstallError, match="Flux2KleinKVPipeline models are not supported yet"):
            install_model(engine.registry, str(folder), name="kv")
    finally:
        engine.registry.remove(record.id)


def reference_layer(layer_id: str = "ref", seed: int = 3, x: int = 200, y: int = -80) -> Layer:
    """A picture of 40 x 24 with a transparent border, off the box (where it lies does not matter)."""
    pixels = np.zeros((32, 48, 4), np.uint8)
    pixels[4:28, 4:44] = rgba(24, 40, seed=seed)
    return Layer(layer_id, LayerKind.REFERENCE, x, y, pixels)


def test_a_reference_layer_is_its_painted_part_over_white_and_not_the_init_image():
    from invoke_core.compile import reference_image

    layer = reference_layer()
    pixels = layer.pixels.copy()
    pixels[4, 4, 3] = 0  # a transparent pixel inside: white
    image = reference_image(Layer("ref", LayerKind.REFERENCE, 0, 0, pixels))
    assert image.shape == (24, 40, 3) and tuple(image[0, 0]) == (255, 255, 255)
    assert np.array_equal(image[1:, 1:], pixels[5:28, 5:44, :3])
    request = compile_canvas(doc([reference_layer()]))
    assert request.mode.value == "txt2img" and request.init_image is None and len(request.references) == 1
    with pytest.raises(Exception, match="reference layer 'e' is empty: load a picture into it or hide it"):
        compile_canvas(doc([Layer("e", LayerKind.REFERENCE, 0, 0, np.zeros((8, 8, 4), np.uint8))]))
    many = [reference_layer(f"r{n}") for n in range(11)]
    with pytest.raises(Exception, match="11 reference layers: a job takes at most 10"):
        compile_canvas(doc(many))


def test_reference_layers_go_in_as_the_text_to_image_pipelines_reference_images(engine):
    import torch
    from diffusers import Flux2KleinPipeline
    from PIL import Image

    plain = run1(engine, doc(seed=5, steps=2))[0]
    ours = run1(engine, doc([reference_layer()], seed=5, steps=2))[0]
    assert ours.metadata["references"] == [{"layer_id": "ref", "width": 40, "height": 24, "weight": 1.0, "begin": 0.0, "end": 1.0}]
    assert not np.array_equal(ours.image, plain.image)
    other = run1(engine, doc([reference_layer(seed=9)], seed=5, steps=2))[0]
    assert not np.array_equal(other.image, ours.image), "the picture steers the job"
    moved = run1(engine, doc([reference_layer(x=-500, y=7)], seed=5, steps=2))[0]
    assert np.array_equal(moved.image, ours.image), "its place on the canvas does not"
    two = run1(engine, doc([reference_layer(), reference_layer("ref2", seed=9)], seed=5, steps=2))[0]
    assert len(two.metadata["references"]) == 2 and not np.array_equal(two.image, ours.image)
    # the same as the pipeline given the picture, at whole tokens and the pipeline's shortest side
    from invoke_core import masks
    from invoke_core.families.flux2 import reference_size

    assert reference_size(40, 24) == (96, 64) and reference_size(4096, 2048) == (1440, 720)
    with pytest.raises(UnsupportedError, match="a 900x100 reference picture is narrower than FLUX.2 takes \\(at most 8:1\\): crop it"):
        reference_size(900, 100)
    raw = Flux2KleinPipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    picture = Image.fromarray(masks.resize_image(np.asarray(compile_canvas(doc([reference_layer()])).references[0].image), (96, 64)))
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", image=[picture], num_inference_steps=2, guidance_scale=4.0, width=64, height=64,
                  generator=torch.Generator().manual_seed(5), output_type="np", max_sequence_length=512).images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))


def test_a_reference_steers_inpaint_and_image_to_image_and_the_rest_is_kept(engine):
    from family_jobs import inpaint_layers

    layers, init, outside = inpaint_layers()
    plain = run1(engine, doc(layers, strength=1.0, steps=2))[0]
    ours = run1(engine, doc([*layers, reference_layer()], strength=1.0, steps=2))[0]
    assert ours.metadata["mode"] == "inpaint" and len(ours.metadata["references"]) == 1
    assert np.array_equal(ours.image[outside], init[..., :3][outside])
    assert not np.array_equal(ours.image, plain.image)
    img2img = run1(engine, doc([layers[0], reference_layer()], strength=0.6, steps=3))[0]
    assert img2img.metadata["mode"] == "img2img"
    with pytest.raises(UnsupportedError, match="FLUX.2 \\[klein\\] takes one reference layer when it repaints the canvas \\(2 are shown\\)"):
        run1(engine, doc([*layers, reference_layer(), reference_layer("ref2")], strength=1.0, steps=2))


@pytest.mark.parametrize("inpaint", [False, True])
def test_regions_with_a_reference_cover_its_tokens(engine, inpaint):
    from family_jobs import inpaint_layers

    layers = inpaint_layers()[0] if inpaint else []
    with_ref = run1(engine, doc([*layers, region_layer(), reference_layer()], strength=1.0, steps=2))[0]
    assert with_ref.metadata["regions"]["items"][0]["use"] == "region" and len(with_ref.metadata["references"]) == 1
    assert not np.array_equal(with_ref.image, run1(engine, doc([*layers, region_layer()], strength=1.0, steps=2))[0].image)


def test_families_without_reference_images_refuse_the_layer_in_core_and_the_api(engine, tmp_path):
    import io

    from PIL import Image

    from server.app import create_app, shutdown

    with pytest.raises(UnsupportedError, match="Stable Diffusion 3.5 models have no reference images: hide the reference layers"):
        run1(engine, doc([reference_layer()], model="demo-sd3", cfg_scale=3.5))
    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        buffer = io.BytesIO()
        Image.fromarray(reference_layer().pixels).save(buffer, format="PNG")
        up = client.post("/api/v1/images", data={"file": (io.BytesIO(buffer.getvalue()), "ref.png"), "category": "layer"},
                         content_type="multipart/form-data", headers={"Origin": "http://localhost"})
        assert up.status_code == 201, up.json
        layer = {"id": "ref", "kind": "reference", "x": 90, "y": 0, "image_id": up.json["id"]}
        document = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [layer], "params": {"prompt": "p", "steps": 2}}
        for model, status in (("demo-sd3", 422), ("demo-zimage", 422), (MODEL, 201)):
            body = {"document": {**document, "params": {**document["params"], "model": model}}}
            r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
            assert r.status_code == status, (model, r.json)
            if status == 422:
                assert "have no reference images: hide the reference layers" in r.json["message"], r.json
        assert "reference" in client.get("/api/v1/config").json["families"]["flux2"]["features"]
    finally:
        shutdown(app)
