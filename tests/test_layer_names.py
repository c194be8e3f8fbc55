"""Errors about a layer name it by its UI name ("Region 1"), not by its internal id; a layer without a
name falls back to the id. Through the Flask test client, on an app without the worker."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from server.app import create_app, shutdown
from server.jobs import name_layers

API = "/api/v1"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("names")), "device": "cpu", "start_worker": False})
    yield app.test_client()
    shutdown(app)


@pytest.fixture(scope="module")
def image(client):
    response = client.post(f"{API}/images", data={"file": (io.BytesIO(png()), "x.png")}, content_type="multipart/form-data")
    assert response.status_code in (200, 201), response.text
    return response.json["id"]


def submit(client, *layers):
    document = {
        "bbox": {"x": 0, "y": 0, "width": 64, "height": 64},
        "layers": list(layers),
        "params": {"prompt": "p", "steps": 2, "seed": 1},
    }
    return client.post(f"{API}/canvas/jobs", json={"document": document})


def test_a_region_without_a_prompt_is_named_by_its_name(client, image):
    layer = {"id": "lbda891a2c", "kind": "regional_guidance", "image_id": image, "name": "Region 1"}
    response = submit(client, layer)
    assert response.status_code == 422, response.text
    message = response.json["message"]
    assert 'regional guidance layer "Region 1" needs a prompt' in message, message
    assert "lbda891a2c" not in message


def test_a_region_prompt_error_is_named_by_its_name(client, image):
    layer = {"id": "lbda891a2c", "kind": "regional_guidance", "image_id": image, "name": "Sky",
             "region": {"prompt": "(a boat"}}
    response = submit(client, layer)
    assert response.status_code == 422, response.text
    assert 'region layer "Sky"' in response.json["message"], response.json["message"]


def test_a_control_layer_error_is_named_by_its_name(client, image):
    layer = {"id": "lc0ffee", "kind": "control", "image_id": image, "name": "Pose"}
    response = submit(client, layer)
    assert response.status_code == 422, response.text
    assert 'control layer "Pose"' in response.json["message"], response.json["message"]
    assert "lc0ffee" not in response.json["message"]


def test_a_layer_without_a_name_falls_back_to_its_id(client, image):
    response = submit(client, {"id": "lbda891a2c", "kind": "regional_guidance", "image_id": image})
    assert response.status_code == 422, response.text
    assert "regional guidance layer 'lbda891a2c' needs a prompt" in response.json["message"]


def test_names_replace_only_their_own_ids():
    class L:
        def __init__(self, id, name):
            self.id, self.name = id, name

    message = "layer 'a': x; layer 'ab': y; layer 'c': z"
    assert name_layers(message, [L("a", "One"), L("ab", "Two"), L("c", None)]) == 'layer "One": x; layer "Two": y; layer \'c\': z'
