"""FLUX.1 reference layers through FLUX Redux (invoke_core/families/flux_redux.py), on diffusers' real Flux and
FluxPriorRedux pipelines with the tiny random-weight demos (demo-flux, demo-flux-redux): through the engine
and the server (enqueue, metadata, recall)."""

from __future__ import annotations

import numpy as np
import pytest

from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, UnsupportedError
from invoke_core.types import ControlSettings, Layer, LayerKind

from test_reference import API, SIZE, app, doc, image_pixels, picture, reference, region, run_job, upload  # noqa: F401 (app: the server fixture)


def run(engine, layers=(), **params):
    params = dict(model="demo-flux", steps=2, cfg_scale=3.5) | params
    return engine.run(compile_canvas(doc(layers, **params)))[0]


@pytest.fixture(scope="module")
def plain(engine):
    return run(engine)


def check_steers(engine, plain, make, model_id: str) -> None:
    """A reference layer made by `make(**settings)` changes the image by its picture and weight, weight 0 gives the
    pixels of no reference, the next job is the base model's, and the metadata names `model_id`."""
    ours = run(engine, [make()])
    assert not np.array_equal(ours.image, plain.image), "the reference steers the job"
    assert np.array_equal(run(engine, [make()]).image, ours.image), "same seed, same pixels"
    assert not np.array_equal(run(engine, [make(seed=9)]).image, ours.image), "another picture, another image"
    assert not np.array_equal(run(engine, [make(weight=0.5)]).image, ours.image), "the weight scales it"
    assert np.array_equal(run(engine, [make(weight=0)]).image, plain.image), "weight 0: the pixels of no reference"
    assert np.array_equal(run(engine).image, plain.image), "the next job is the base model's"
    record = engine.registry.get(model_id)
    assert ours.metadata["references"] == [{
        "layer_id": "ref", "width": 48, "height": 40, "weight": 1.0, "begin": 0.0, "end": 1.0,
        "model": {"id": model_id, "name": record.name, "hash": record.hash, "family": "flux"},
    }]


def test_a_redux_reference_changes_the_image_and_weight_zero_is_no_reference(engine, plain):
    check_steers(engine, plain, reference, "demo-flux-redux")


def test_two_references_in_layer_order_and_a_zero_weight_second(engine, plain):
    one = run(engine, [reference()])
    two = run(engine, [reference(), reference("ref2", seed=9)])
    assert not np.array_equal(two.image, one.image) and len(two.metadata["references"]) == 2
    assert np.array_equal(run(engine, [reference(), reference("ref2", seed=9, weight=0)]).image, one.image)


def test_redux_tokens_follow_the_prompt_tokens(engine):
    """The call's prompt_embeds: the job's T5 tokens, then each reference's image tokens (16 for the demo)."""
    import torch

    from invoke_core import families
    from invoke_core.families.flux_redux import redux_references

    family = families.get("flux")
    loaded = engine.cache.get(engine.registry.get("demo-flux"), engine.device).model
    redux = engine.cache.get(engine.registry.get("demo-flux-redux"), engine.device).model
    request = compile_canvas(doc([reference(), reference("ref2", seed=9)], model="demo-flux"))
    prompt = family.encode_prompts(loaded, "a cat", None, False)
    with redux_references(loaded, request, [redux, redux]) as refs:
        call = refs.inputs(dict(prompt))
    assert call["prompt_embeds"].shape[1] == prompt["prompt_embeds"].shape[1] + 2 * 16
    assert torch.equal(call["prompt_embeds"][:, : prompt["prompt_embeds"].shape[1]], prompt["prompt_embeds"])
    assert call["pooled_prompt_embeds"] is prompt["pooled_prompt_embeds"]


def task_cases() -> dict:
    """The FLUX.1 tasks a reference layer runs on: name -> (layers, job parameters)."""
    image = picture(3, (SIZE, SIZE))
    mask = np.zeros((SIZE, SIZE, 4), np.uint8)
    mask[16:48, 16:48, 3] = 255
    raster, inpaint = Layer("img", LayerKind.RASTER, 0, 0, image), Layer("m", LayerKind.INPAINT_MASK, 0, 0, mask)
    control = Layer("c", LayerKind.CONTROL, 0, 0, image, control=ControlSettings(model="demo-flux-controlnet"))
    return {
        "true cfg": ([], dict(true_cfg_scale=2.0, negative_prompt="blurry")),
        "img2img": ([raster], dict(strength=0.7)),
        "inpaint": ([raster, inpaint], dict(strength=0.8, mask_blur=0)),
        "controlnet": ([control], {}),
        "controlnet img2img": ([raster, control], dict(strength=0.7)),  # a pipeline without IP-Adapter inputs
        "fill": ([raster, inpaint], dict(model="demo-flux-fill", strength=1.0, mask_blur=0)),
    }


def test_redux_with_true_cfg_img2img_controlnet_and_fill(engine):
    cases = {k: v for k, v in task_cases().items() if k != "controlnet img2img"}
    for name, (layers, params) in cases.items():
        without = run(engine, layers, **params)
        ours = run(engine, [*layers, reference()], **params)
        assert not np.array_equal(ours.image, without.image), name


def test_refused_combinations_say_why(engine):
    with pytest.raises(UnsupportedError, match="begin 0 and end 1"):
        run(engine, [reference(begin=0.5)])
    with pytest.raises(UnsupportedError, match="begin 0 and end 1"):
        run(engine, [reference(end=0.5)])
    for layers in ([region(), reference(x=0, y=0)], [region(), reference()]):  # over a region or beside one
        with pytest.raises(UnsupportedError, match="cannot run with regional prompts"):
            run(engine, layers)
    # the job side's own checks (a job whose regions the engine would fold away still gets here)
    from invoke_core import families
    from invoke_core.families.flux_redux import ReduxRun, redux_references

    request = compile_canvas(doc([region(), reference(x=0, y=0)], model="demo-flux"))
    with pytest.raises(UnsupportedError, match="off the regional guidance layers"):
        with redux_references(None, request, [None]):
            pass
    with pytest.raises(UnsupportedError, match="cannot run with regional prompts"):
        ReduxRun([object()]).inputs({"prompt_embeds": None, "joint_attention_kwargs": {"attention_mask": 1}})
    assert "reference" in families.get("flux").features
    with pytest.raises(InvalidCanvasError, match="not a FLUX Redux"):
        run(engine, [reference(model="demo-flux-controlnet")])


def test_the_api_runs_records_and_recalls_a_redux_reference(app):
    client = app.test_client()
    ref_id = upload(client, picture(2))
    layer = {"id": "ref", "kind": "reference", "x": 80, "y": 0, "image_id": ref_id, "reference": {"weight": 0.8}}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [layer],
                "params": {"prompt": "a cat", "steps": 2, "seed": 3, "model": "demo-flux", "cfg_scale": 3.5}}
    original = run_job(client, document)["image_ids"][0]
    recall = client.get(f"{API}/images/{original}/recall").json
    (ref,) = recall["references"]
    assert ref["model"] == "demo-flux-redux" and ref["installed"] and ref["weight"] == 0.8 and ref["available"]
    rebuilt = {**document, "layers": [{"id": r["layer_id"], "kind": "reference", "x": r["x"], "y": r["y"], "image_id": r["image_id"],
                                       "reference": {k: r[k] for k in ("model", "weight", "begin", "end")}} for r in recall["references"]]}
    assert np.array_equal(image_pixels(client, run_job(client, rebuilt)["image_ids"][0]), image_pixels(client, original)), "recall reproduces it"
    without = run_job(client, {**document, "layers": []})["image_ids"][0]
    assert not np.array_equal(image_pixels(client, without), image_pixels(client, original)), "the reference mattered"
    config = client.get(f"{API}/config").json
    assert "reference" in config["families"]["flux"]["features"] and config["families"]["flux"]["reference_model_kind"] == "redux"
    assert {m["id"]: m["kind"] for m in client.get(f"{API}/models").json}["demo-flux-redux"] == "redux"
    bad = {**document, "layers": [{**layer, "reference": {"begin": 0.5}}]}
    response = client.post(f"{API}/canvas/jobs", json={"document": bad})
    assert response.status_code == 422 and "begin 0 and end 1" in response.json["message"]
    mask = upload(client, np.full((SIZE, SIZE, 4), 255, np.uint8))
    regional = {**document, "layers": [layer, {"id": "reg", "kind": "regional_guidance", "x": 0, "y": 0, "image_id": mask,
                                               "region": {"prompt": "a dog"}}]}
    response = client.post(f"{API}/canvas/jobs", json={"document": regional})
    assert response.status_code == 422 and "cannot run with regional prompts" in response.json["message"], response.json


def test_a_redux_folder_installs_by_path_and_is_the_default(engine, tmp_path):
    import shutil

    from invoke_core.errors import ModelInstallError
    from invoke_core.families.flux_demo import build_redux_demo
    from invoke_core.model_install import install_model

    folder = build_redux_demo(tmp_path / "FLUX.1-Redux-tiny")
    record = install_model(engine.registry, str(folder))
    try:
        assert (record.kind, record.family) == ("redux", "flux")
        ours = run(engine, [reference()])
        assert ours.metadata["references"][0]["model"]["id"] == record.id, "an installed Redux before the demo"
    finally:
        engine.registry.remove(record.id)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "image_encoder")
    with pytest.raises(ModelInstallError, match="image_encoder"):
        install_model(engine.registry, str(broken))
