"""Recall of a whole job: an image made with a region, a control layer and a LoRA through the real server
(worker, demo models, SQLite) recalls all of it, and the recalled job reproduces the image pixel for pixel."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from invoke_core.demo_lora import build_lora
from invoke_core.model_install import install_model
from server.app import create_app, shutdown

API = "/api/v1"
SIZE = 64


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client, array: np.ndarray, category: str) -> str:
    response = client.post(
        f"{API}/images",
        data={"file": (io.BytesIO(png(array)), "layer.png"), "category": category},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def run_job(client, document: dict) -> dict:
    """Enqueue, wait for completion; the finished generation (with its image ids)."""
    response = client.post(f"{API}/canvas/jobs", json={"document": document})
    assert response.status_code == 201, response.get_data(as_text=True)
    item_id, generation_id = response.json["item_ids"][0], response.json["generation_ids"][0]
    deadline = time.monotonic() + 120
    while (item := client.get(f"{API}/queue/items/{item_id}").json)["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, item
        time.sleep(0.05)
    assert item["status"] == "completed", item
    return client.get(f"{API}/history/{generation_id}").json


def pixels(client, image_id: str) -> np.ndarray:
    url = client.get(f"{API}/images/{image_id}").json["url"]
    return np.asarray(Image.open(io.BytesIO(client.get(url).data)))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("recall-root")
    app = create_app({"root": str(root), "device": "cpu"})
    registry = app.extensions["invoke_canvas"].registry
    lora_file = build_lora(Path(registry.get("demo").path), tmp_path_factory.mktemp("loras") / "ink.safetensors", seed=3)
    app.config["lora_id"] = install_model(registry, str(lora_file), name="Ink style").id
    yield app
    shutdown(app)


def test_regions_controls_and_loras_are_recalled_and_reproduce_the_image(app):
    client = app.test_client()
    lora_id = app.config["lora_id"]
    region = np.zeros((SIZE, SIZE, 4), np.uint8)
    region[:, : SIZE // 2, 3] = 255
    control = np.zeros((SIZE, SIZE, 4), np.uint8)
    control[16:48, 16:48] = 255
    region_id, control_id = upload(client, region, "mask"), upload(client, control, "control")
    layers = [
        {"id": "reg-1", "kind": "regional_guidance", "x": 8, "y": 0, "image_id": region_id, "name": "Boat",
         "color": "#33aaff", "region": {"prompt": "a (red)1.2 boat", "negative_prompt": "fog", "strength": 0.6}},
        {"id": "ctl-1", "kind": "control", "x": 0, "y": 0, "image_id": control_id, "name": "Edges",
         "control": {"model": "demo-controlnet", "preprocessor": "canny", "weight": 0.7, "begin": 0.1, "end": 0.9,
                     "mode": "prompt"}},
    ]
    params = {"prompt": "a harbour", "negative_prompt": "blurry", "model": "demo", "steps": 2, "seed": 11,
              "cfg_scale": 5.0, "scheduler": "dpmpp_2m", "mask_blur": 4, "infill": "telea",
              "loras": [{"model": lora_id, "weight": 0.5}]}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": layers, "params": params}
    original = run_job(client, document)["image_ids"][0]

    recall = client.get(f"{API}/images/{original}/recall").json
    assert (recall["prompt"], recall["negative_prompt"], recall["seed"], recall["steps"]) == ("a harbour", "blurry", 11, 2)
    assert (recall["model_id"], recall["scheduler"], recall["mask_blur"], recall["infill"]) == ("demo", "dpmpp_2m", 4, "telea")
    assert recall["bbox"] == [0, 0, SIZE, SIZE] and recall["scale"] == 1.0
    hash_ = app.extensions["invoke_canvas"].registry.get(lora_id).hash
    assert recall["loras"] == [{"model": lora_id, "name": "Ink style", "hash": hash_, "weight": 0.5, "installed": True}]
    assert recall["regions"] == [
        {"layer_id": "reg-1", "name": "Boat", "color": "#33aaff", "image_id": region_id, "x": 8, "y": 0,
         "prompt": "a (red)1.2 boat", "negative_prompt": "fog", "strength": 0.6, "available": True}
    ]
    [ctl] = recall["controls"]
    assert {k: ctl[k] for k in ("layer_id", "name", "image_id", "x", "y", "available", "installed", "model")} == {
        "layer_id": "ctl-1", "name": "Edges", "image_id": control_id, "x": 0, "y": 0, "available": True,
        "installed": True, "model": "demo-controlnet"}
    assert (ctl["preprocessor"], ctl["weight"], ctl["begin"], ctl["end"], ctl["mode"]) == ("canny", 0.7, 0.1, 0.9, "prompt")

    # The recalled job, rebuilt from the recall alone, gives the same pixels.
    x, y, w, h = recall["bbox"]
    rebuilt_layers = [
        {"id": r["layer_id"], "kind": "regional_guidance", "x": r["x"], "y": r["y"], "image_id": r["image_id"],
         "region": {"prompt": r["prompt"], "negative_prompt": r["negative_prompt"], "strength": r["strength"]}}
        for r in recall["regions"]
    ] + [
        {"id": c["layer_id"], "kind": "control", "x": c["x"], "y": c["y"], "image_id": c["image_id"],
         "control": {k: c[k] for k in ("model", "preprocessor", "weight", "begin", "end", "mode")}}
        for c in recall["controls"]
    ]
    keys = ("prompt", "negative_prompt", "steps", "seed", "cfg_scale", "scheduler", "mask_blur", "infill", "scale")
    rebuilt_params = {**{k: recall[k] for k in keys}, "model": recall["model_id"],
                      "loras": [{"model": lo["model"], "weight": lo["weight"]} for lo in recall["loras"]]}
    rebuilt = {"bbox": {"x": x, "y": y, "width": w, "height": h}, "layers": rebuilt_layers, "params": rebuilt_params}
    again = run_job(client, rebuilt)["image_ids"][0]
    assert np.array_equal(pixels(client, again), pixels(client, original))
    without_lora = run_job(client, {**rebuilt, "params": {**rebuilt_params, "loras": []}})["image_ids"][0]
    assert not np.array_equal(pixels(client, without_lora), pixels(client, original))  # the LoRA mattered

    # A deleted layer asset and an uninstalled LoRA are reported, not hidden.
    assert client.delete(f"{API}/images/{region_id}").status_code == 200
    assert client.delete(f"{API}/models/{lora_id}").status_code == 200
    later = client.get(f"{API}/images/{original}/recall").json
    assert later["regions"][0]["available"] is False and later["controls"][0]["available"] is True
    assert later["loras"][0]["installed"] is False and later["loras"][0]["model"] is None


def test_a_flux2_reference_layer_is_recalled_and_reproduces_the_image(app):
    client = app.test_client()
    picture = np.zeros((80, 96, 4), np.uint8)
    picture[8:72, 8:88] = np.random.default_rng(4).integers(0, 256, (64, 80, 4), dtype=np.uint8) | np.uint8(1)
    ref_id = upload(client, picture, "layer")
    layers = [{"id": "ref-1", "kind": "reference", "x": 300, "y": -40, "image_id": ref_id, "name": "Mood"}]
    params = {"prompt": "a harbour", "model": "demo-flux2", "steps": 2, "seed": 3, "cfg_scale": 4.0}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": layers, "params": params}
    original = run_job(client, document)["image_ids"][0]
    recall = client.get(f"{API}/images/{original}/recall").json
    assert recall["references"] == [
        {"layer_id": "ref-1", "name": "Mood", "image_id": ref_id, "x": 300, "y": -40, "available": True, "weight": 1.0, "begin": 0.0, "end": 1.0}
    ]
    rebuilt = {**document, "layers": [{"id": r["layer_id"], "kind": "reference", "x": r["x"], "y": r["y"], "image_id": r["image_id"]}
                                      for r in recall["references"]]}
    assert np.array_equal(pixels(client, run_job(client, rebuilt)["image_ids"][0]), pixels(client, original))
    without = run_job(client, {**document, "layers": []})["image_ids"][0]
    assert not np.array_equal(pixels(client, without), pixels(client, original)), "the reference mattered"


def test_recall_of_images_without_layers_and_unknown_ids(app):
    client = app.test_client()
    plain = run_job(client, {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [],
                             "params": {"prompt": "a lighthouse", "steps": 1, "seed": 2}})["image_ids"][0]
    recall = client.get(f"{API}/images/{plain}/recall").json
    assert not {"loras", "regions", "controls", "references"} & recall.keys() and recall["model_id"] == "demo"
    photo = upload(client, np.full((8, 8, 3), 90, np.uint8), "general")
    assert client.get(f"{API}/images/{photo}/recall").json == {}
    missing = client.get(f"{API}/images/{'0' * 32}/recall")
    assert missing.status_code == 404 and missing.json["error"]


def test_a1111_image_recalls_its_loras_by_hash_or_name(app, tmp_path):
    from PIL import PngImagePlugin

    client = app.test_client()
    registry = app.extensions["invoke_canvas"].registry
    lora = install_model(registry, str(build_lora(Path(registry.get("demo").path), tmp_path / "w.safetensors", seed=9)), name="Watercolour")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", (
        "a harbour <lora:watercolor_v2:0.8> <lora:Watercolour:0.4> <lora:unknown:1>\n"
        f'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64, Lora hashes: "watercolor_v2: {lora.hash[:10]}"'
    ))
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG", pnginfo=info)
    response = client.post(f"{API}/images", data={"file": (io.BytesIO(buffer.getvalue()), "a1111.png")},
                           content_type="multipart/form-data")
    recall = client.get(f"{API}/images/{response.json['id']}/recall").json
    assert recall["prompt"] == "a harbour" and recall["seed"] == 5
    assert [(lo["name"], lo["weight"], lo["model"], lo["installed"]) for lo in recall["loras"]] == [
        ("watercolor_v2", 0.8, lora.id, True),  # another name, the same file: found by its hash
        ("Watercolour", 0.4, lora.id, True),  # found by name
        ("unknown", 1.0, None, False),
    ]
