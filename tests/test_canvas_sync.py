"""Saving a canvas as a closing page does (issue 11): a browser-made id, the tiles changed since the
last save (not whole layers), and the rule for saves based on an older version (another browser's
version is kept whole as a named copy; this browser's own unread save is simply built on).
Real app, real SQLite, real asset files.
"""

from __future__ import annotations

import base64
import io
import uuid

import numpy as np
import pytest
from PIL import Image

from server.app import create_app, shutdown
from server.canvas_tiles import Placed, Tile, apply_tiles

API = "/api/v1"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def b64(array: np.ndarray) -> str:
    return base64.b64encode(png(array)).decode()


def solid(h: int, w: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgba, dtype=np.uint8), (h, w, 4)).copy()


def document(layers=(), **ui) -> dict:
    doc = {
        "bbox": {"x": 0, "y": 0, "width": 64, "height": 64},
        "layers": list(layers),
        "params": {"prompt": "a harbour", "model": "demo"},
    }
    if ui:
        doc["ui"] = ui
    return doc


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("sync-root")), "device": "cpu"})
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


def pixels_of(client, image_id: str) -> np.ndarray:
    response = client.get(f"{API}/images/{image_id}/file")
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.data)).convert("RGBA"))


def upload(client, array: np.ndarray) -> str:
    response = client.post(f"{API}/images", data={"file": (io.BytesIO(png(array)), "l.png"), "category": "layer"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


# --- the pure tile maths ---------------------------------------------------------------------------


def test_tiles_replace_their_rectangles_and_the_result_is_cropped_to_what_is_painted():
    base = Placed(solid(4, 4, (255, 0, 0, 255)), 10, 10)
    clear = Tile(10, 10, 2, 4, solid(4, 2, (0, 0, 0, 0)))  # erases the left half
    grown = Tile(14, 10, 2, 2, solid(2, 2, (0, 0, 255, 128)))  # paints beside the base
    out = apply_tiles(base, [clear, grown])
    assert (out.x, out.y) == (12, 10) and out.pixels.shape == (4, 4, 4)
    assert (out.pixels[0, 0] == [255, 0, 0, 255]).all()
    assert (out.pixels[0, 2] == [0, 0, 255, 128]).all()
    assert out.pixels[3, 3, 3] == 0  # below the new tile: never painted
    assert apply_tiles(base, [Tile(8, 8, 8, 8, None)]) is None  # a removed tile clears all it covers
    assert apply_tiles(None, []) is None


# --- saves with tiles --------------------------------------------------------------------------------


def test_a_browser_made_id_creates_the_canvas_and_tiles_patch_its_layer(client):
    canvas_id = uuid.uuid4().hex
    base = upload(client, solid(8, 8, (255, 0, 0, 255)))
    layer = {"id": "l1", "kind": "raster", "x": 4, "y": 4, "image_id": base, "name": "Sketch"}
    tile = {"layer_id": "l1", "x": 8, "y": 4, "width": 8, "height": 8, "png": b64(solid(8, 8, (0, 255, 0, 255)))}
    body = {"canvas_id": canvas_id, "create": True, "name": "Harbour", "document": document([layer]), "tiles": [tile],
            "base_version": 0, "client": "browserA"}
    saved = client.post(f"{API}/canvas", json=body)
    assert saved.status_code == 201, saved.get_data(as_text=True)
    assert saved.json["id"] == canvas_id and saved.json["current_version"] == 1 and saved.json["kept_copy"] is None
    doc = client.get(f"{API}/canvas/{canvas_id}").json["document"]
    patched = doc["layers"][0]
    assert patched["image_id"] != base and (patched["x"], patched["y"]) == (4, 4) and patched["name"] == "Sketch"
    assert doc["ui"]["writer"] == "browserA"
    out = pixels_of(client, patched["image_id"])
    assert out.shape == (8, 12, 4)
    assert (out[0, 0] == [255, 0, 0, 255]).all() and (out[0, 4] == [0, 255, 0, 255]).all()
    assert (pixels_of(client, base)[0, 4] == [255, 0, 0, 255]).all()  # the base asset is untouched
    # the same save again (its reply was lost): it lands on the same canvas, no second canvas
    again = client.post(f"{API}/canvas", json={**body, "base_version": 1})
    assert again.status_code == 201 and again.json["id"] == canvas_id and again.json["current_version"] == 2


def test_a_layer_whose_tiles_are_all_cleared_has_no_image(client):
    base = upload(client, solid(4, 4, (9, 9, 9, 255)))
    layer = {"id": "m", "kind": "inpaint_mask", "x": 0, "y": 0, "image_id": base}
    tile = {"layer_id": "m", "x": 0, "y": 0, "width": 256, "height": 256}
    out = client.post(f"{API}/canvas", json={"name": "Wiped", "document": document([layer]), "tiles": [tile]})
    assert out.status_code == 201
    assert "image_id" not in client.get(f"{API}/canvas/{out.json['id']}").json["document"]["layers"][0]


@pytest.mark.parametrize(
    ("tile", "message"),
    [
        ({"layer_id": "nope", "x": 0, "y": 0, "width": 2, "height": 2}, "does not have"),
        ({"layer_id": "l", "x": 0, "y": 0, "width": 2, "height": 2, "png": "%%%"}, "not base64"),
        ({"layer_id": "l", "x": 0, "y": 0, "width": 2, "height": 2, "png": base64.b64encode(b"text").decode()}, "not a readable image"),
        ({"layer_id": "l", "x": 0, "y": 0, "width": 3, "height": 2, "png": b64(solid(2, 2, (1, 1, 1, 1)))}, "not 3x2"),
        ({"layer_id": "l", "x": 0, "y": 0, "width": 512, "height": 2}, "less than or equal to 256"),
    ],
)
def test_bad_tiles_are_refused_and_nothing_is_saved(client, tile, message):
    before = len(client.get(f"{API}/canvas").json)
    layer = {"id": "l", "kind": "raster"}
    out = client.post(f"{API}/canvas", json={"name": "Bad", "document": document([layer]), "tiles": [tile]})
    assert 400 <= out.status_code < 500 and message in out.json["message"], out.json
    assert len(client.get(f"{API}/canvas").json) == before


def test_a_new_canvas_id_must_be_32_hex_digits(client):
    out = client.post(f"{API}/canvas", json={"canvas_id": "../x", "create": True, "name": "X", "document": document()})
    assert out.status_code == 422 and "hex" in out.json["message"]


# --- saves based on an older version ------------------------------------------------------------------


def make(client, name: str, writer: str) -> dict:
    out = client.post(f"{API}/canvas", json={"name": name, "document": document(), "client": writer, "base_version": 0,
                                             "canvas_id": uuid.uuid4().hex, "create": True})
    assert out.status_code == 201
    return out.json


def test_another_browsers_newer_version_is_kept_as_a_named_copy(client):
    canvas = make(client, "Lighthouse", "A")
    other = document(note="from B")
    assert client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": other, "client": "B", "base_version": 1}).status_code == 201
    mine = document(note="from A")
    out = client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": mine, "client": "A", "base_version": 1})
    assert out.status_code == 201 and out.json["current_version"] == 3
    kept = out.json["kept_copy"]
    assert kept and kept["name"] == "Lighthouse (another browser's version)"
    assert client.get(f"{API}/canvas/{kept['id']}").json["document"]["ui"]["note"] == "from B"
    assert client.get(f"{API}/canvas/{canvas['id']}").json["document"]["ui"]["note"] == "from A"


def test_building_on_this_browsers_own_unread_save_keeps_no_copy(client):
    canvas = make(client, "Own", "A")
    client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": document(), "client": "A", "base_version": 1})
    out = client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": document(), "client": "A", "base_version": 1})
    assert out.status_code == 201 and out.json["kept_copy"] is None and out.json["current_version"] == 3
    names = [c["name"] for c in client.get(f"{API}/canvas").json]
    assert "Own (another browser's version)" not in names


def test_a_stale_save_without_a_client_id_is_a_409_that_writes_nothing(client):
    canvas = make(client, "Strict", "A")
    client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": document(), "client": "A", "base_version": 1})
    out = client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": document(), "base_version": 1})
    assert out.status_code == 409 and out.json["error"] == "version_conflict" and out.json["detail"] == {"current_version": 2}
    assert client.get(f"{API}/canvas/{canvas['id']}").json["canvas"]["current_version"] == 2
