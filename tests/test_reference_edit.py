"""Reference layers on edit models: FLUX.1 Kontext and Qwen-Image-Edit (plain and Edit Plus) take them as their
own pictures to edit from, after the one under the box (invoke_core/families/edit_references.py), on diffusers'
real pipelines with the tiny random-weight demos; the models API says what each model takes."""

from __future__ import annotations

import numpy as np
import pytest

from invoke_core.compile import compile_canvas
from invoke_core.errors import UnsupportedError
from invoke_core.families.edit_references import pictures, side_by_side
from invoke_core.types import Layer, LayerKind

from test_reference import API, SIZE, app, doc, image_pixels, picture, reference, run_job, upload  # noqa: F401 (app: the server fixture)

KONTEXT, QWEN_EDIT = "demo-flux-kontext", "demo-qwen-edit"


def run(engine, layers=(), **params):
    params = dict(steps=2, cfg_scale=3.5) | params
    return engine.run(compile_canvas(doc(layers, **params)))[0]


def box_picture(seed: int = 3) -> Layer:
    return Layer("img", LayerKind.RASTER, 0, 0, picture(seed, (SIZE, SIZE)))


def as_reference(seed: int = 3, layer_id: str = "ref") -> Layer:
    """The box's picture on a reference layer, at the box's size: the same picture to edit from."""
    return Layer(layer_id, LayerKind.REFERENCE, 100, 0, picture(seed, (SIZE, SIZE)))


@pytest.mark.parametrize("model", [KONTEXT, QWEN_EDIT])
def test_a_reference_layer_is_the_picture_an_edit_model_edits_from(engine, model):
    from_box = run(engine, [box_picture()], model=model)
    from_layer = run(engine, [as_reference()], model=model)
    # the same picture on a reference layer over an empty box: the same image (the layer went in as its picture)
    assert np.array_equal(from_layer.image, from_box.image)
    assert from_box.metadata["mode"] == "edit" and from_layer.metadata["references"][0]["layer_id"] == "ref"
    assert "model" not in from_layer.metadata["references"][0], "no model of its own"
    assert not np.array_equal(run(engine, [as_reference(seed=4)], model=model).image, from_layer.image), "another picture"
    # beside the box's picture: both pictures steer the edit
    both = run(engine, [box_picture(), reference(seed=9)], model=model)
    assert not np.array_equal(both.image, from_box.image) and both.metadata["mode"] == "edit"
    assert not np.array_equal(run(engine, [box_picture(), reference(seed=9), reference("ref2", seed=10)], model=model).image, both.image)


def test_kontext_runs_an_empty_box_without_references_as_text_to_image(engine):
    plain = run(engine, [], model=KONTEXT)
    assert plain.metadata["mode"] == "txt2img"
    assert not np.array_equal(run(engine, [as_reference()], model=KONTEXT).image, plain.image)


def test_edit_plus_reads_the_pictures_as_its_list(engine, tmp_path):
    from diffusers import QwenImageEditPlusPipeline

    from invoke_core.demo import _save_atomically
    from invoke_core.engine import Engine
    from invoke_core.model_install import install_model

    edit = engine.cache.get(engine.resolve_model(QWEN_EDIT), engine.device).model
    plus = QwenImageEditPlusPipeline(**edit.components)
    plus.register_to_config(processor=("transformers", "Qwen2VLProcessor"))
    _save_atomically(plus, tmp_path / "edit-plus")
    mine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(mine.registry, str(tmp_path / "edit-plus"), name="my edit plus")
    from_box = run(mine, [box_picture()], model=record.id)
    assert np.array_equal(run(mine, [as_reference()], model=record.id).image, from_box.image)
    both = run(mine, [box_picture(), reference(seed=9)], model=record.id)
    assert not np.array_equal(both.image, from_box.image)
    # the list, not one stitched picture: Edit Plus reads each picture; plain Edit one
    from invoke_core import families

    qwen = families.get("qwen-image")
    request = compile_canvas(doc([box_picture(), reference(seed=9)], model=record.id))
    box = request.init_image
    from PIL import Image

    box = Image.fromarray(np.asarray(box)[..., :3])
    call = qwen.reference_inputs(mine.cache.get(record, mine.device).model, request, {"image": box})
    assert isinstance(call["image"], list) and len(call["image"]) == 2 and call["image"][0] is not None
    call = qwen.reference_inputs(edit, request, {"image": box})
    assert call["image"].size == (2 * SIZE, SIZE), "plain Edit: side by side in one"


def test_what_edit_models_refuse_on_reference_layers(engine):
    for model, label in ((KONTEXT, "FLUX.1 edit models"), (QWEN_EDIT, "Qwen-Image edit models")):
        with pytest.raises(UnsupportedError, match=f"{label} take reference images themselves: leave its model unset"):
            run(engine, [reference(model="demo-flux-redux")], model=model)
        with pytest.raises(UnsupportedError, match=f"{label} take a reference image whole, at every step"):
            run(engine, [reference(weight=0.5)], model=model)
    with pytest.raises(UnsupportedError, match="Qwen-Image models take no reference images: choose a Qwen-Image-Edit model"):
        run(engine, [reference()], model="demo-qwen")
    with pytest.raises(UnsupportedError, match="and the box is empty"):  # still: nothing to edit at all
        run(engine, [], model=QWEN_EDIT)
    thin = Layer("ref", LayerKind.REFERENCE, 100, 0, picture(1, (8, 48)))
    with pytest.raises(UnsupportedError, match="narrower than edit models take"):
        run(engine, [thin], model=KONTEXT)


def test_pictures_side_by_side_at_the_first_ones_height():
    from PIL import Image

    box = Image.new("RGB", (64, 48), (0, 0, 0))
    request = compile_canvas(doc([reference(seed=1)]))  # a 48x40 picture
    (one,) = pictures(None, request.references, (64, 64), 16)
    assert one.size == (64, 64)  # about the generation's area, in multiples of 16
    both = pictures(box, request.references, (64, 48), 16)
    stitched = side_by_side(both, 16)
    assert stitched.size == (64 + 64, 48) and np.array_equal(np.asarray(stitched)[:, :64], np.asarray(box))
    assert side_by_side([box], 16) is box


def test_the_models_api_says_how_each_model_takes_reference_layers(app):
    client = app.test_client()
    kinds = {m["id"]: m["reference_kinds"] for m in client.get(f"{API}/models").get_json()}
    assert kinds["demo"] == ["ip_adapter"] and kinds["demo-flux"] == ["redux", "ip_adapter"]
    assert kinds[KONTEXT] == [] and kinds[QWEN_EDIT] == [] and kinds["demo-flux2"] == []
    assert kinds["demo-qwen"] is None and kinds["demo-sd3"] is None
    assert kinds["demo-ip-adapter"] is None and kinds["demo-flux-redux"] is None  # not main models


def test_the_api_refuses_a_reference_on_qwen_image_and_runs_and_recalls_one_on_its_edit_model(app):
    client = app.test_client()
    ref_id = upload(client, picture(2))
    layer = {"id": "ref", "kind": "reference", "x": 80, "y": 0, "image_id": ref_id}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [layer],
                "params": {"prompt": "make it red", "steps": 2, "seed": 5, "model": "demo-qwen"}}
    refused = client.post(f"{API}/canvas/jobs", json={"document": document})
    assert refused.status_code == 422 and "choose a Qwen-Image-Edit model" in refused.json["message"], refused.json
    weighted = {**document, "params": {**document["params"], "model": QWEN_EDIT}, "layers": [{**layer, "reference": {"weight": 0.5}}]}
    refused = client.post(f"{API}/canvas/jobs", json={"document": weighted})
    assert refused.status_code == 422 and "whole, at every step" in refused.json["message"], refused.json
    document["params"]["model"] = QWEN_EDIT
    original = run_job(client, document)["image_ids"][0]
    (ref,) = client.get(f"{API}/images/{original}/recall").json["references"]
    assert ref["image_id"] and ref.get("model") is None and ref["weight"] == 1
    again = run_job(client, document)["image_ids"][0]
    assert np.array_equal(image_pixels(client, again), image_pixels(client, original))
