"""HiDream-I1 through the family seam, on the tiny random-weight `demo-hidream` (two long CLIPs, a T5 and a
Llama, a sparse-MoE transformer of one dual- and one single-stream block, FLUX.1's 16-channel VAE): text
to image at the box's own size; image to image, inpaint and outpaint on the generic flow-matching path
(invoke_core/flow_tasks.py); its rules (what it lacks, its largest size) as clear errors, in the core and
through the API; recognition of its diffusers folders and of Full, Dev and Fast."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import rgba
from family_jobs import Jobs, inpaint_layers, run1

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, ModelInstallError, UnsupportedError
from invoke_core.types import Layer, LayerKind, LoraSpec, RegionPrompt

MODEL = "demo-hidream"


jobs = Jobs(MODEL, cfg_scale=5.0)
params, doc = jobs.params, jobs.doc


def mask_layer(box: tuple[int, int, int, int]) -> Layer:
    return inpaint_layers(box=box)[0][1]


def test_the_demo_is_a_hidream_model_labelled_random_weights_with_fasts_defaults(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "hidream" and record.builtin and "random weights" in record.description
    family = families.get("hidream")
    assert family.model_defaults(record).steps == 16 and family.model_defaults(record).cfg_scale == 1.0
    assert family.describe()["schedulers"] == ["euler"] and family.size_multiple == 16


def test_txt2img_keeps_the_box_size_same_seed_same_pixels_and_previews(engine):
    seen = []
    a = run1(engine, doc(width=64, height=48), on_progress=seen.append)[0]
    b = run1(engine, doc(width=64, height=48))[0]
    c = run1(engine, doc(width=64, height=48, seed=8))[0]
    # the pipeline alone would rescale 64x48 to its 1024x1024 sample area
    assert a.image.shape == (48, 64, 3) and a.metadata["generation_size"] == [64, 48]
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.metadata["model"]["family"] == "hidream" and a.metadata["mode"] == "txt2img"
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 6)


def test_the_negative_prompt_counts_with_cfg_and_not_without(engine):
    plain = run1(engine, doc())[0]
    negative = run1(engine, doc(negative_prompt="fog"))[0]
    assert not np.array_equal(plain.image, negative.image)
    off = run1(engine, doc(cfg_scale=1.0))[0]
    assert np.array_equal(off.image, run1(engine, doc(cfg_scale=1.0, negative_prompt="fog"))[0].image)


def test_img2img_starts_from_the_image_at_the_strengths_sigma(engine):
    init = rgba(64, 64, seed=1)
    layer = [Layer("img", LayerKind.RASTER, 0, 0, init)]
    weak = run1(engine, doc(layer, strength=0.3, steps=4))[0]
    strong = run1(engine, doc(layer, strength=0.9, steps=4))[0]
    assert weak.metadata["mode"] == "img2img"
    assert np.array_equal(weak.image, run1(engine, doc(layer, strength=0.3, steps=4))[0].image)
    distance = lambda r: np.abs(r.image.astype(int) - init[..., :3]).mean()  # noqa: E731
    assert 0 < distance(weak) < distance(strong), "a lower strength stays nearer the image"


def test_inpaint_repaints_the_mask_and_keeps_every_pixel_outside(engine):
    init = rgba(64, 64, seed=2)
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer((16, 48, 16, 48))]
    seen = []
    result = run1(engine, doc(layers, strength=1.0), on_progress=seen.append)[0]
    assert result.metadata["mode"] == "inpaint" and len(seen) == 3
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(result.image[outside], init[..., :3][outside])
    assert not np.array_equal(result.image[~outside], init[..., :3][~outside])


def test_outpaint_keeps_every_originally_opaque_pixel(engine):
    init = rgba(32, 64, seed=4)  # the top 32 rows of the box
    result = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, init)], strength=1.0, infill="telea"))[0]
    assert result.metadata["mode"] == "outpaint"
    assert np.array_equal(result.image[:32], init[..., :3])
    assert result.image[32:].std() > 0


def test_what_hidream_lacks_is_refused_naming_the_family_and_the_feature(engine):
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, :32, 3] = 255
    region = Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt="a red boat"))
    with pytest.raises(UnsupportedError, match="HiDream-I1 models have no regional prompts"):
        run1(engine, doc([region]))
    with pytest.raises(InvalidCanvasError, match="does not suit HiDream-I1 models: choose one of euler"):
        run1(engine, doc(scheduler="dpmpp_2m"))
    with pytest.raises(InvalidCanvasError, match="not a multiple of 16"):
        run1(engine, doc(width=72))
    # its transformer's largest latent: 1024x1024 (4096 patches), whatever the aspect
    with pytest.raises(InvalidCanvasError, match="more than HiDream-I1 models generate"):
        families.get("hidream").check_job(scheduler="euler", size=(2048, 768), regions=False, controls=False, loras=False)


def test_a_size_past_the_models_transformer_is_refused_before_it_runs(engine):
    # the demo's transformer covers 64x64 latents (512x512 px), less than the released models
    with pytest.raises(InvalidCanvasError, match="this model's transformer takes at most 1024"):
        run1(engine, doc(width=1024, height=512, steps=1))


def test_a_hidream_lora_stack_changes_the_image_and_the_base_model_comes_back(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    folder = engine.registry.get(MODEL).path
    lora = install_model(engine.registry, str(build_transformer_lora(folder, tmp_path / "a.safetensors", "hidream", seed=1)), name="hd a")
    assert (lora.family, lora.kind) == ("hidream", "lora")
    small = dict(width=32, height=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(lora.id, 1.0),)))[0]
    again = run1(engine, doc(**small))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(again.image, plain.image)
    assert one.metadata["loras"][0]["id"] == lora.id


def test_a_hidream_folder_installs_by_path_and_full_dev_fast_are_told_by_their_scheduler(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.hidream_demo import build_hidream_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    folder = build_hidream_demo(tmp_path / "my-hidream")
    record = install_model(engine.registry, str(folder), name="my hidream")
    assert (record.family, record.kind, record.format) == ("hidream", "main", "diffusers")
    family = families.get("hidream")
    assert family.model_defaults(record).steps == 16  # Fast: Euler shifted by 3
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "shift": 6.0}))
    assert family.model_defaults(record).steps == 28  # Dev
    full = {"_class_name": "UniPCMultistepScheduler", "flow_shift": 3.0, "use_flow_sigmas": True, "prediction_type": "flow_prediction"}
    config_file.write_text(json.dumps(full))
    assert (family.model_defaults(record).steps, family.model_defaults(record).cfg_scale) == (50, 5.0)  # Full
    assert family.scheduler_config(full)["shift"] == 3.0, "Full's flow shift, as our flow Euler reads it"
    result = engine.run(compile_canvas(doc(model=record.id, width=32, height=32, steps=2)))[0]
    assert result.image.shape == (32, 32, 3) and result.metadata["model"]["family"] == "hidream"


def test_a_hidream_folder_without_its_llama_is_refused(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.hidream_demo import build_hidream_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    folder = build_hidream_demo(tmp_path / "no-llama")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "text_encoder_4": [None, None]}))
    shutil.rmtree(folder / "text_encoder_4")
    with pytest.raises(ModelInstallError, match="without its T5 .* or Llama"):
        install_model(engine.registry, str(folder), name="broken")


def test_the_api_refuses_hidream_jobs_it_cannot_run_with_422(tmp_path):
    from server.app import create_app, shutdown

    import io

    from PIL import Image

    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        origin = {"Origin": "http://localhost"}
        document = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "p", "model": MODEL, "steps": 2}}
        png = io.BytesIO()
        Image.new("RGBA", (64, 64), (255, 255, 255, 255)).save(png, "PNG")
        up = client.post("/api/v1/images", data={"file": (io.BytesIO(png.getvalue()), "r.png")}, content_type="multipart/form-data", headers=origin)
        region = {"id": "r", "kind": "regional_guidance", "image_id": up.json["id"], "region": {"prompt": "a red boat"}}
        for change, layers, message in (
            ({"scheduler": "dpmpp_2m"}, [], "does not suit HiDream-I1 models"),
            ({"scale": 1.125}, [], "not a multiple of 16"),
            ({"scale": 3.0, "width": 1024}, [], "more than HiDream-I1 models generate"),
            ({}, [region], "HiDream-I1 models have no regional prompts"),
        ):
            bbox = {**document["bbox"], **({"width": change.pop("width"), "height": 1024} if "width" in change else {})}
            body = {"document": {**document, "bbox": bbox, "layers": layers, "params": {**document["params"], **change}}}
            r = client.post("/api/v1/canvas/jobs", json=body, headers=origin)
            assert r.status_code == 422, (change, r.status_code, r.json)
            assert message in r.json["message"], r.json
        families_served = client.get("/api/v1/config").json["families"]
        assert families_served["hidream"]["label"] == "HiDream-I1"
        assert "regions" not in families_served["hidream"]["features"]
        ok = client.post("/api/v1/canvas/jobs", json={"document": document}, headers={"Origin": "http://localhost"})
        assert ok.status_code in (200, 201), ok.json
    finally:
        shutdown(app)
