"""Every REST route and Socket.IO event, in process: `app.test_client()` and Socket.IO's test client.

One app (worker running, demo model) is shared by the module; tests that touch the queue leave it
idle and unpaused. Auth runs on a second app that listens on 0.0.0.0.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from server.app import create_app, shutdown

API = "/api/v1"
FINISHED = ("completed", "failed", "canceled")
ORIGIN = "http://studio.example"


# --- helpers ---------------------------------------------------------------------------------------


def encode(array: np.ndarray, fmt: str = "PNG", pnginfo=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"pnginfo": pnginfo} if pnginfo else {}))
    return buffer.getvalue()


def noise(h: int = 32, w: int = 48, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def upload(client, data: bytes, name: str = "a.png", **form) -> dict:
    response = client.post(f"{API}/images", data={"file": (io.BytesIO(data), name), **form}, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def document(layers=(), size: int = 64, **params) -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": list(layers),
        "params": {"prompt": "a lighthouse", "steps": 2, "seed": 3, "model": "demo", "mask_blur": 0, "infill": "telea", **params},
    }


def enqueue(client, doc: dict | None = None, **body) -> dict:
    payload = {"document": doc or document(), **body} if "canvas_id" not in body else body
    response = client.post(f"{API}/canvas/jobs", json=payload)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def wait_items(client, ids, statuses=FINISHED, timeout: float = 60, pump=None) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = [client.get(f"{API}/queue/items/{i}").json for i in ids]
        if pump:
            pump()
        if all(item["status"] in statuses for item in items):
            return items
        assert time.monotonic() < deadline, f"items not {statuses}: {items}"
        time.sleep(0.05)


class Events:
    """Everything a Socket.IO test client received, in order."""

    def __init__(self, socket_client):
        self.client = socket_client
        self.log: list[tuple[str, dict]] = []

    def pump(self) -> list[tuple[str, dict]]:
        self.log += [(e["name"], e["args"][0]) for e in self.client.get_received()]
        return self.log

    def named(self, name: str) -> list[dict]:
        self.pump()
        return [data for n, data in self.log if n == name]

    def wait(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(n, d) for n, d in self.pump()):
            assert time.monotonic() < deadline, f"event not seen; got {[n for n, _ in self.log]}"
            time.sleep(0.02)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-root")
    app = create_app({"root": str(root), "device": "cpu", "cors_origins": [ORIGIN]})
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def events(app, client):
    socket_client = app.extensions["socketio_instance"].test_client(app, flask_test_client=client)
    assert socket_client.is_connected()
    yield Events(socket_client)
    socket_client.disconnect()


@pytest.fixture(autouse=True)
def queue_left_idle(app):
    """Every test leaves the shared queue unpaused with nothing pending or running."""
    yield
    client = app.test_client()
    client.post(f"{API}/queue/resume")
    pending = [i["id"] for i in client.get(f"{API}/queue/items?status=pending").json]
    running = [i["id"] for i in client.get(f"{API}/queue/items?status=in_progress").json]
    if pending or running:
        client.post(f"{API}/queue/cancel-pending")
        for item_id in running:
            client.post(f"{API}/queue/items/{item_id}/cancel")
        wait_items(client, pending + running)


# --- health, OpenAPI, CORS -------------------------------------------------------------------------


def test_health(client):
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok" and body["version"] and body["device"] == "cpu"
    assert set(body["queue"]["counts"]) == {"pending", "in_progress", "completed", "failed", "canceled"}
    assert body["queue"]["paused"] is False


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document_covers_every_route(app, client):
    spec = client.get(f"{API}/openapi.json").json
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] and spec["info"]["version"]
    # Every registered /api/v1 rule (but the document itself) is documented, with its methods.
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API) or rule.rule.endswith("/openapi.json"):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", "{%s}" % arg).replace(f"<{arg}>", "{%s}" % arg)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"] and op["summary"], (path, method)
            for name in (p["name"] for p in op.get("parameters", []) if p["in"] == "path"):
                assert "{%s}" % name in path
    # Every $ref resolves inside the document.
    schemas = spec["components"]["schemas"]
    refs = set(_refs(spec))
    assert refs, "no schema references at all"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    job = spec["paths"][f"{API}/canvas/jobs"]["post"]
    assert job["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobIn"}
    # a saved canvas may hold empty layers (image_id optional) and UI state; a job's layers need pixels
    assert "JobDocumentIn" in str(schemas["JobIn"]["properties"]["document"])
    assert "JobLayerIn" in str(schemas["JobDocumentIn"]["properties"]["layers"])
    assert "image_id" in schemas["JobLayerIn"]["required"]
    assert "image_id" not in schemas["LayerIn"].get("required", [])
    assert {"name", "locked", "color"} <= set(schemas["LayerIn"]["properties"])
    assert "ui" in schemas["CanvasDocumentIn"]["properties"] and "ui" in schemas["JobDocumentIn"]["properties"]
    save = spec["paths"][f"{API}/canvas"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert save == {"$ref": "#/components/schemas/CanvasSaveIn"}
    assert "CanvasDocumentIn" in str(schemas["CanvasSaveIn"]["properties"]["document"])
    assert "multipart/form-data" in spec["paths"][f"{API}/images"]["post"]["requestBody"]["content"]


def test_cors_only_for_configured_origins(client):
    allowed = client.get(f"{API}/health", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = client.get(f"{API}/health", headers={"Origin": "http://elsewhere.example"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(f"{API}/boards", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


# --- boards ---------------------------------------------------------------------------------------


def _find(tree, board_id):
    for node in tree:
        if node["board"]["id"] == board_id:
            return node
        found = _find(node["children"], board_id)
        if found:
            return found
    return None


def test_boards(client, events):
    create = lambda **body: client.post(f"{API}/boards", json=body)  # noqa: E731
    response = create(name="Landscapes")
    assert response.status_code == 201
    top = response.json
    child = create(name="Sea", parent_id=top["id"]).json
    other = create(name="Portraits").json
    assert child["parent_id"] == top["id"] and child["image_count"] == 0
    assert [d["change"] for d in events.named("board_changed")] == ["created"] * 3

    tree = client.get(f"{API}/boards").json
    assert [c["board"]["id"] for c in _find(tree, top["id"])["children"]] == [child["id"]]
    assert client.get(f"{API}/boards/{child['id']}").json["name"] == "Sea"

    renamed = client.patch(f"{API}/boards/{top['id']}", json={"name": "  Land  "})
    assert renamed.status_code == 200 and renamed.json["name"] == "Land"
    moved = client.patch(f"{API}/boards/{other['id']}", json={"parent_id": top["id"], "position": 0}).json
    assert moved["parent_id"] == top["id"]
    order = [c["board"]["id"] for c in _find(client.get(f"{API}/boards").json, top["id"])["children"]]
    assert order == [other["id"], child["id"]]
    reordered = client.post(f"{API}/boards/reorder", json={"parent_id": top["id"], "ordered_ids": [child["id"], other["id"]]})
    assert reordered.status_code == 200 and [b["id"] for b in reordered.json] == [child["id"], other["id"]]
    assert [c["board"]["id"] for c in _find(client.get(f"{API}/boards").json, top["id"])["children"]] == [child["id"], other["id"]]
    back = client.patch(f"{API}/boards/{other['id']}", json={"parent_id": None}).json
    assert back["parent_id"] is None

    archived = client.patch(f"{API}/boards/{other['id']}", json={"archived": True}).json
    assert archived["archived"] is True
    assert _find(client.get(f"{API}/boards?include_archived=false").json, other["id"]) is None
    assert _find(client.get(f"{API}/boards").json, other["id"]) is not None

    image = upload(client, encode(noise()), board_id=top["id"])
    cover = client.patch(f"{API}/boards/{top['id']}", json={"cover_image_id": image["id"]}).json
    assert cover["cover_image_id"] == image["id"] and cover["image_count"] == 1
    assert client.patch(f"{API}/boards/{top['id']}", json={"cover_image_id": None}).json["cover_image_id"] is None
    changes = [d["change"] for d in events.named("board_changed")]
    assert {"renamed", "moved", "archived", "cover"} <= set(changes)

    # Delete without images: the sub-board goes too, the image becomes uncategorised.
    kept = upload(client, encode(noise(seed=1)), board_id=child["id"])
    gone = client.delete(f"{API}/boards/{top['id']}")
    assert gone.status_code == 200
    assert sorted(gone.json["board_ids"]) == sorted([top["id"], child["id"]])
    assert gone.json["images_deleted"] == 0 and gone.json["images_uncategorised"] == 2
    assert client.get(f"{API}/boards/{child['id']}").status_code == 404
    assert client.get(f"{API}/images/{kept['id']}").json["board_id"] is None

    # Delete with images: rows and files gone.
    doomed = upload(client, encode(noise(seed=2)), board_id=other["id"])
    result = client.delete(f"{API}/boards/{other['id']}?include_images=true").json
    assert result == {"board_ids": [other["id"]], "images_deleted": 1, "images_uncategorised": 0}
    assert client.get(f"{API}/images/{doomed['id']}").status_code == 404
    assert client.get(f"{API}/images/{doomed['id']}/file").status_code == 404


# --- images ---------------------------------------------------------------------------------------


def test_upload_formats_file_and_thumbnail(client, events):
    board = client.post(f"{API}/boards", json={"name": "Formats"}).json
    pixels = noise(40, 56, seed=5)
    for fmt, name, mime in (("PNG", "a.png", "image/png"), ("JPEG", "b.jpg", "image/jpeg"), ("WEBP", "c.webp", "image/webp")):
        record = upload(client, encode(pixels, fmt), name, board_id=board["id"])
        assert (record["width"], record["height"]) == (56, 40) and record["origin"] == "uploaded"
        assert record["url"] == f"{API}/images/{record['id']}/file"
        file = client.get(record["url"])
        assert file.status_code == 200 and file.mimetype == mime
        assert Image.open(io.BytesIO(file.data)).size == (56, 40)
        if fmt == "PNG":
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(file.data))), pixels)  # lossless, byte for byte
        thumb = client.get(record["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.mimetype == "image/webp"
        assert Image.open(io.BytesIO(thumb.data)).format == "WEBP"
        file.close()
        thumb.close()
    added = events.named("image_added")
    assert len(added) == 3 and all(a["image"]["board_id"] == board["id"] for a in added)


def test_image_list_filters_search_and_pagination(client):
    board = client.post(f"{API}/boards", json={"name": "Listing"}).json
    ids = [upload(client, encode(noise(seed=10 + i)), board_id=board["id"])["id"] for i in range(5)]
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a zebra crossing the river\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 99, Size: 48x32, Model: zebra-xl")
    zebra = upload(client, encode(noise(seed=20), pnginfo=info), "zebra.png", board_id=board["id"])["id"]
    ids.append(zebra)

    everything = client.get(f"{API}/images", query_string={"board_id": board["id"], "limit": 100}).json
    assert [i["id"] for i in everything["items"]] == ids[::-1] and everything["next_cursor"] is None

    seen, cursor = [], None
    for _ in range(10):
        params = {"board_id": board["id"], "limit": 2, "order": "oldest"} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"{API}/images", query_string=params).json
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    found = client.get(f"{API}/images", query_string={"search": "zebra"}).json["items"]
    assert [i["id"] for i in found] == [zebra]
    assert [i["id"] for i in client.get(f"{API}/images", query_string={"model_name": "zebra-xl"}).json["items"]] == [zebra]
    client.patch(f"{API}/images/{ids[1]}", json={"starred": True})
    starred = client.get(f"{API}/images", query_string={"board_id": board["id"], "starred": "true"}).json["items"]
    assert [i["id"] for i in starred] == [ids[1]]
    assert client.get(f"{API}/images", query_string={"board_id": board["id"], "origin": "generated"}).json["items"] == []
    now = time.strftime("%Y-%m-%d", time.gmtime())
    dated = client.get(f"{API}/images", query_string={"board_id": board["id"], "created_from": now, "created_to": "2999-01-01"}).json
    assert len(dated["items"]) == 6
    assert client.get(f"{API}/images", query_string={"board_id": board["id"], "created_to": "2000-01-01"}).json["items"] == []

    # One image: record, metadata, recall of A1111 parameters, history.
    record = client.get(f"{API}/images/{zebra}").json
    assert record["prompt"] == "a zebra crossing the river" and record["negative_prompt"] == "fog" and record["model_name"] == "zebra-xl"
    metadata = client.get(f"{API}/images/{zebra}/metadata").json
    assert metadata["source"] == "a1111" and "Seed: 99" in metadata["original"]["parameters"]
    recall = client.get(f"{API}/images/{zebra}/recall").json
    assert recall["prompt"] == "a zebra crossing the river" and recall["negative_prompt"] == "fog"
    assert (recall["steps"], recall["seed"], recall["cfg_scale"], recall["scheduler"]) == (20, 99, 7.0, "euler_a")
    assert (recall["width"], recall["height"]) == (48, 32)
    assert client.get(f"{API}/images/{zebra}/history").json == {"image_id": zebra, "generation": None, "canvas_generations": []}

    # Patch one and many; counts and per-day counts.
    other = client.post(f"{API}/boards", json={"name": "Elsewhere"}).json
    moved = client.patch(f"{API}/images/{ids[0]}", json={"board_id": other["id"], "starred": True}).json
    assert moved["board_id"] == other["id"] and moved["starred"] is True
    batch = client.patch(f"{API}/images/batch", json={"ids": ids[2:4], "board_id": other["id"]})
    assert batch.status_code == 200 and batch.json == {"count": 2}
    counts = {c["board_id"]: c["count"] for c in client.get(f"{API}/images/counts").json}
    assert counts[other["id"]] == 3 and counts[board["id"]] == 3
    unstarred = client.patch(f"{API}/images/batch", json={"ids": [ids[0], ids[1]], "starred": False}).json
    assert unstarred == {"count": 2} and client.get(f"{API}/images/{ids[1]}").json["starred"] is False
    days = client.get(f"{API}/images/by-date", query_string={"board_id": other["id"]}).json
    assert days == [{"date": now, "count": 3}]
    assert sum(d["count"] for d in client.get(f"{API}/images/by-date").json) >= 6
    uncategorised = client.patch(f"{API}/images/{ids[0]}", json={"board_id": None}).json
    assert uncategorised["board_id"] is None

    # Delete one, then many: rows, files and thumbnails go.
    assert client.delete(f"{API}/images/{ids[0]}").json == {"count": 1}
    assert client.get(f"{API}/images/{ids[0]}").status_code == 404
    assert client.post(f"{API}/images/delete", json={"ids": ids[1:3]}).json == {"count": 2}
    for image_id in ids[:3]:
        assert client.get(f"{API}/images/{image_id}/thumbnail").status_code == 404
    remaining = client.get(f"{API}/images", query_string={"board_id": board["id"]}).json["items"]
    assert sorted(i["id"] for i in remaining) == sorted([ids[4], zebra])


# --- canvases -------------------------------------------------------------------------------------


def test_canvas_save_load_versions_rename_delete(client):
    first = document(prompt="first")
    saved = client.post(f"{API}/canvas", json={"name": "Harbour", "document": first, "autosave": False})
    assert saved.status_code == 201
    canvas = saved.json
    assert canvas["current_version"] == 1 and canvas["name"] == "Harbour"
    second = document(prompt="second")
    again = client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": second}).json
    assert again["id"] == canvas["id"] and again["current_version"] == 2

    listed = {c["id"]: c for c in client.get(f"{API}/canvas").json}
    assert listed[canvas["id"]]["version_count"] == 2
    latest = client.get(f"{API}/canvas/{canvas['id']}").json
    assert latest["document"] == second and latest["canvas"]["current_version"] == 2
    assert client.get(f"{API}/canvas/{canvas['id']}?version=1").json["document"] == first
    versions = client.get(f"{API}/canvas/{canvas['id']}/versions").json
    assert [(v["version"], v["autosave"]) for v in versions] == [(2, True), (1, False)]
    renamed = client.patch(f"{API}/canvas/{canvas['id']}", json={"name": "Harbour at night"})
    assert renamed.status_code == 200 and renamed.json["name"] == "Harbour at night"
    assert client.delete(f"{API}/canvas/{canvas['id']}").json == {"count": 1}
    assert client.get(f"{API}/canvas/{canvas['id']}").status_code == 404
    assert canvas["id"] not in {c["id"] for c in client.get(f"{API}/canvas").json}


def test_canvas_carries_ui_state_round_trip(client):
    """Layer names, lock, colours, empty layers (no image_id yet) and free-form `ui` state are saved
    and come back as sent; a job from that canvas leaves the empty layer out and stores no `ui`."""
    layer = noise(16, 16, seed=2, channels=4)
    asset = upload(client, encode(layer), category="mask")
    ui = {
        "staging": {"items": [{"image_id": "a" * 32, "url": "/x", "item_id": 7, "bbox": {"x": 0, "y": 0, "width": 64, "height": 64}}], "index": 0},
        "random_seed": True,
        "seed": 1234,
        "board_id": None,
    }
    layers = [
        {"id": "empty", "kind": "raster", "name": "Not painted yet", "locked": True},
        {"id": "mask", "kind": "inpaint_mask", "image_id": asset["id"], "x": 8, "y": -4, "name": "Sky mask", "color": "#12ab9F"},
        {"id": "region", "kind": "regional_guidance", "name": "Boat", "color": "#3d8be0", "region": {"prompt": "a boat"}},
    ]
    doc = {**document(layers), "ui": ui}
    saved = client.post(f"{API}/canvas", json={"name": "UI state", "document": doc})
    assert saved.status_code == 201, saved.get_data(as_text=True)
    back = client.get(f"{API}/canvas/{saved.json['id']}").json["document"]
    assert back == doc
    assert [(l["id"], l.get("name"), l.get("locked", False), l.get("color")) for l in back["layers"]] == [
        ("empty", "Not painted yet", True, None),
        ("mask", "Sky mask", False, "#12ab9F"),
        ("region", "Boat", False, "#3d8be0"),
    ]
    assert "image_id" not in back["layers"][0]

    # the same canvas as a job: the empty layers drop out, the UI fields are ignored by the worker
    job = enqueue(client, canvas_id=saved.json["id"])
    [item] = wait_items(client, job["item_ids"])
    assert item["status"] == "completed", item
    request = client.get(f"{API}/history/{job['generation_ids'][0]}").json["request"]
    assert [l["id"] for l in request["layers"]] == ["mask"] and "ui" not in request
    # an inline job takes the UI fields too (the worker ignores them)
    inline = enqueue(client, {**document(layers[1:2]), "ui": ui})
    [item] = wait_items(client, inline["item_ids"])
    assert item["status"] == "completed", item

    # bad UI fields are refused with the field named
    for bad, says in [
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"color": "red"}, "color"),
        ({"color": "#12345"}, "color"),
        ({"locked": "maybe"}, "locked"),
        ({"z": 3}, "z"),
    ]:
        response = client.post(f"{API}/canvas", json={"name": "bad", "document": document([{**layers[0], **bad}])})
        assert response.status_code == 422, (bad, response.json)
        assert says in response.json["message"], (bad, response.json)
    response = client.post(f"{API}/canvas", json={"name": "bad", "document": {**document(), "ui": ["not", "an", "object"]}})
    assert response.status_code == 422 and "ui" in response.json["message"], response.json


def test_job_refuses_a_layer_without_image_id(client):
    before = client.get(f"{API}/queue/items", query_string={"limit": 1000}).json
    response = client.post(f"{API}/canvas/jobs", json={"document": document([{"id": "empty", "kind": "raster", "name": "Empty"}])})
    assert response.status_code == 422, response.json
    body = response.json
    assert body["error"] == "validation_error"
    assert body["message"].startswith("document.layers.0:") and "'empty' has no image_id" in body["message"], body
    assert client.get(f"{API}/queue/items", query_string={"limit": 1000}).json == before  # nothing queued


def test_canvas_ui_state_too_large(client):
    from server.schemas import UI_MAX_BYTES

    big = {"staging": {"items": ["x" * 1000] * (UI_MAX_BYTES // 1000 + 1)}}
    before = {c["id"] for c in client.get(f"{API}/canvas").json}
    response = client.post(f"{API}/canvas", json={"name": "Too much", "document": {**document(), "ui": big}})
    assert response.status_code == 422, response.json
    assert response.json["message"].startswith("document.ui:") and f"the limit is {UI_MAX_BYTES}" in response.json["message"]
    assert {c["id"] for c in client.get(f"{API}/canvas").json} == before  # nothing saved
    job = client.post(f"{API}/canvas/jobs", json={"document": {**document(), "ui": big}})
    assert job.status_code == 422 and f"the limit is {UI_MAX_BYTES}" in job.json["message"], job.json
    # just under the limit is fine
    fits = {"pad": "y" * (UI_MAX_BYTES - 20)}
    response = client.post(f"{API}/canvas", json={"name": "Fits", "document": {**document(), "ui": fits}})
    assert response.status_code == 201, response.json


# --- jobs and events -------------------------------------------------------------------------------


def test_inline_job_batch_of_two_with_events(app, client, events):
    worker = app.extensions["invoke_canvas"].worker
    assert worker.engine_ready.wait(60) and worker.engine is not None, worker.engine_error
    worker.engine.cache.clear()  # so this job loads the model and announces it
    job = enqueue(client, document(seed=41, batch_size=2))
    assert job["seeds"] == [41, 42] and len(job["item_ids"]) == 2 and len(set(job["generation_ids"])) == 2
    assert job["item_ids"][1] == job["item_ids"][0] + 1
    items = wait_items(client, job["item_ids"], pump=events.pump)
    assert [i["status"] for i in items] == ["completed", "completed"] and {i["batch_id"] for i in items} == {job["batch_id"]}
    events.wait(lambda n, d: n == "queue_item_status_changed" and d["item_id"] == job["item_ids"][1] and d["status"] == "completed")

    for item_id in job["item_ids"]:
        statuses = [d["status"] for d in events.named("queue_item_status_changed") if d["item_id"] == item_id]
        assert statuses == ["pending", "in_progress", "completed"]
    done = [d for d in events.named("queue_item_status_changed") if d["status"] == "completed"]
    progress = [d for d in events.named("generation_progress") if d["item_id"] in job["item_ids"]]
    assert progress and all(d["total"] == 2 for d in progress)
    assert all(d["preview"].startswith("data:image/jpeg;base64,") for d in progress if d["preview"])
    assert any(d["preview"] for d in progress) and progress[-1]["step"] == 2
    assert list(progress[-1]["bbox"]) == [0, 0, 64, 64]
    loads = [d for d in events.named("model_load") if d["model_id"] == "demo"]
    assert [d["status"] for d in loads] == ["started", "finished"] and loads[1]["seconds"] >= 0
    added = [d["image"] for d in events.named("image_added")]
    assert len(added) == 2 and all(a["origin"] == "generated" and (a["width"], a["height"]) == (64, 64) for a in added)
    assert sorted(i for d in done for i in d["image_ids"]) == sorted(a["id"] for a in added)

    for image, seed, generation_id in zip(added, job["seeds"], job["generation_ids"]):
        meta = client.get(f"{API}/images/{image['id']}/metadata").json
        assert meta["seed"] == seed and meta["generation_id"] == generation_id
        recall = client.get(f"{API}/images/{image['id']}/recall").json
        assert recall["seed"] == seed and recall["steps"] == 2 and recall["prompt"] == "a lighthouse"
        history = client.get(f"{API}/images/{image['id']}/history").json
        assert history["generation"]["id"] == generation_id and history["generation"]["image_ids"] == [image["id"]]
        generation = client.get(f"{API}/history/{generation_id}").json
        assert generation["seed"] == seed and generation["status"] == "completed" and generation["model_id"] == "demo"
        assert generation["mode"] == "txt2img"  # the mode compile chose, recorded by the worker
    pixels = [np.asarray(Image.open(io.BytesIO(client.get(a["url"]).data))) for a in added]
    assert not np.array_equal(pixels[0], pixels[1])  # seed and seed+1

    cache = client.get(f"{API}/models/cache").json
    assert "demo" in cache["loaded"] and cache["loads"] >= 1 and cache["ram_used"] > 0


def test_job_from_saved_canvas(client):
    board = client.post(f"{API}/boards", json={"name": "From canvas"}).json
    layer = noise(64, 40, seed=7, channels=4)
    layer[..., 3] = 255
    asset = upload(client, encode(layer), category="layer")
    doc = document([{"id": "base", "kind": "raster", "image_id": asset["id"]}], seed=5)
    canvas = client.post(f"{API}/canvas", json={"name": "Saved", "document": doc}).json
    client.post(f"{API}/canvas", json={"canvas_id": canvas["id"], "document": document(seed=6)})  # version 2: txt2img
    job = enqueue(client, canvas_id=canvas["id"], version=1, board_id=board["id"])
    assert job["seeds"] == [5]
    [item] = wait_items(client, job["item_ids"])
    assert item["status"] == "completed", item
    [image] = client.get(f"{API}/images", query_string={"board_id": board["id"]}).json["items"]
    result = np.asarray(Image.open(io.BytesIO(client.get(image["url"]).data)).convert("RGB"))
    assert np.array_equal(result[:, :40], layer[..., :3])  # outpaint keeps the painted part
    generation = client.get(f"{API}/history/{job['generation_ids'][0]}").json
    assert (generation["canvas_id"], generation["canvas_version"], generation["board_id"]) == (canvas["id"], 1, board["id"])
    assert generation["request"]["params"]["seed"] == 5 and generation["mode"] == "outpaint"
    latest = enqueue(client, canvas_id=canvas["id"])  # no version: the latest
    assert latest["seeds"] == [6]
    wait_items(client, latest["item_ids"])
    page = client.get(f"{API}/history", query_string={"canvas_id": canvas["id"]}).json
    assert [g["canvas_version"] for g in page["items"]] == [2, 1]
    by_board = client.get(f"{API}/history", query_string={"board_id": board["id"], "limit": 1}).json
    assert [g["id"] for g in by_board["items"]] == job["generation_ids"]
    assert client.get(f"{API}/images/{image['id']}/history").json["canvas_generations"]


# --- queue ----------------------------------------------------------------------------------------


def test_cancel_running_item(client, events):
    job = enqueue(client, document(steps=500, seed=1))
    [item_id] = job["item_ids"]
    events.wait(lambda n, d: n == "generation_progress" and d["item_id"] == item_id)
    assert client.get(f"{API}/queue/status").json["current_item_id"] == item_id
    started = time.monotonic()
    response = client.post(f"{API}/queue/items/{item_id}/cancel")
    assert response.status_code == 200 and response.json["id"] == item_id
    [item] = wait_items(client, [item_id], timeout=10)
    assert item["status"] == "canceled" and time.monotonic() - started < 5
    last = [d["status"] for d in events.named("queue_item_status_changed") if d["item_id"] == item_id][-1]
    assert last == "canceled"
    generated = client.get(f"{API}/images", query_string={"origin": "generated", "limit": 500}).json["items"]
    assert all(i["generation_id"] != job["generation_ids"][0] for i in generated)  # no image for a canceled job


def test_pause_resume_cancel_retry_clear(app, client, events):
    paused = client.post(f"{API}/queue/pause")
    assert paused.status_code == 200 and paused.json["paused"] is True
    assert client.get(f"{API}/health").json["queue"]["paused"] is True

    # A pending item canceled on its own, then retried.
    [single] = enqueue(client)["item_ids"]
    canceled = client.post(f"{API}/queue/items/{single}/cancel").json
    assert canceled["status"] == "canceled" and canceled["finished_at"]
    # cancel-pending takes every pending item.
    pair = enqueue(client, document(batch_size=2))["item_ids"]
    assert client.post(f"{API}/queue/cancel-pending").json == {"count": 2}
    assert {i["status"] for i in (client.get(f"{API}/queue/items/{i}").json for i in pair)} == {"canceled"}
    # A job whose layer asset disappears before it runs fails in the worker.
    asset = upload(client, encode(noise(64, 64, seed=9, channels=4)), category="layer")
    [failing] = enqueue(client, document([{"id": "l", "kind": "raster", "image_id": asset["id"]}]))["item_ids"]
    client.delete(f"{API}/images/{asset['id']}")
    # Enqueued while paused: stays pending.
    [waiting] = enqueue(client, document(seed=77))["item_ids"]
    time.sleep(1.2)
    assert client.get(f"{API}/queue/items/{waiting}").json["status"] == "pending"
    assert client.get(f"{API}/queue/status").json["counts"]["pending"] == 2
    retried = client.post(f"{API}/queue/retry", json={"ids": [single]})
    assert retried.status_code == 200 and [i["status"] for i in retried.json] == ["pending"]

    listed = client.get(f"{API}/queue/items", query_string={"status": "canceled"}).json
    assert set(pair) <= {i["id"] for i in listed}
    after = client.get(f"{API}/queue/items", query_string={"after_id": pair[0], "limit": 2}).json
    assert [i["id"] for i in after] == [pair[1], failing]
    assert client.get(f"{API}/queue/items/{waiting}").json["position"] >= 0

    resumed = client.post(f"{API}/queue/resume").json
    assert resumed["paused"] is False
    done = {i["id"]: i for i in wait_items(client, [single, failing, waiting], pump=events.pump)}
    assert done[single]["status"] == "completed" and done[waiting]["status"] == "completed"
    assert done[failing]["status"] == "failed" and done[failing]["error_type"] == "NotFound"
    assert asset["id"] in done[failing]["error_message"]
    failed_events = [d for d in events.named("queue_item_status_changed") if d["item_id"] == failing and d["status"] == "failed"]
    assert failed_events and failed_events[0]["error_type"] == "NotFound"

    # Retry a failed item: back to pending, and it fails again for the same reason.
    assert client.post(f"{API}/queue/retry", json={"ids": [failing]}).json[0]["status"] == "pending"
    assert wait_items(client, [failing])[0]["status"] == "failed"

    status = client.get(f"{API}/queue/status").json
    assert status["counts"]["pending"] == 0 and status["current_item_id"] is None
    finished = sum(status["counts"][s] for s in FINISHED)
    cleared = client.post(f"{API}/queue/clear").json
    assert cleared == {"count": finished}
    assert client.get(f"{API}/queue/items").json == []
    assert client.get(f"{API}/queue/items/{waiting}").status_code == 404
    assert client.get(f"{API}/history/{done[waiting]['generation_id']}").json["status"] == "completed"  # history stays


# --- models ----------------------------------------------------------------------------------------


def test_models_list_install_remove(client, events, tmp_path):
    listed = {m["id"]: m for m in client.get(f"{API}/models").json}
    assert {"demo", "demo-inpaint", "demo-controlnet"} <= set(listed)
    assert listed["demo"]["builtin"] is True and "random weights" in listed["demo"]["label"]
    assert listed["demo-controlnet"]["kind"] == "controlnet"
    assert listed["demo"]["default"] and listed["demo-controlnet"]["default"]  # no real model installed yet

    from invoke_core.demo import build_sd15_demo

    folder = build_sd15_demo(tmp_path / "m")
    response = client.post(f"{API}/models/install", json={"source": str(folder), "name": "Tiny Installed"})
    assert response.status_code == 202 and response.json["status"] == "started"
    job_id = response.json["job_id"]
    deadline = time.monotonic() + 30
    while (state := client.get(f"{API}/models/install/{job_id}").json)["status"] == "started":
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["status"] == "completed", state
    model_id = state["model_id"]
    events.wait(lambda n, d: n == "model_install_progress" and d["status"] == "completed")
    progress = [d for d in events.named("model_install_progress") if d["job_id"] == job_id]
    assert [d["status"] for d in progress] == ["started", "completed"] and progress[1]["model_id"] == model_id
    installed = {m["id"]: m for m in client.get(f"{API}/models").json}[model_id]
    assert installed["name"] == "Tiny Installed" and installed["builtin"] is False and installed["label"] is None
    assert installed["family"] == "sd-1" and installed["kind"] == "main" and installed["size"] > 0
    assert installed["default"] and not {m["id"]: m for m in client.get(f"{API}/models").json}["demo"]["default"]

    failed = client.post(f"{API}/models/install", json={"source": str(tmp_path / "nothing-here")}).json
    deadline = time.monotonic() + 30
    while (state := client.get(f"{API}/models/install/{failed['job_id']}").json)["status"] == "started":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["status"] == "failed" and state["message"]

    removed = client.delete(f"{API}/models/{model_id}")
    assert removed.status_code == 200 and removed.json["id"] == model_id
    assert model_id not in {m["id"] for m in client.get(f"{API}/models").json}
    assert client.delete(f"{API}/models/{model_id}").status_code == 404
    assert client.get(f"{API}/models/install/{'0' * 32}").status_code == 404
    assert Path(folder).exists()  # removing a model leaves its files


# --- auth ------------------------------------------------------------------------------------------


def test_token_required_beyond_loopback(tmp_path):
    app = create_app({"root": str(tmp_path), "device": "cpu", "host": "0.0.0.0", "start_worker": False})
    try:
        token = app.config["INVOKE_CANVAS_TOKEN"]
        assert token and app.config["INVOKE_CANVAS_TOKEN_GENERATED"]
        client = app.test_client()
        refused = client.get(f"{API}/health")
        assert refused.status_code == 401 and refused.json["error"] == "unauthorized" and set(refused.json) == {"error", "message", "detail"}
        assert client.get(f"{API}/health", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get(f"{API}/boards", query_string={"token": token}).status_code == 401  # URLs: image files only
        created = client.post(f"{API}/boards", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201
        socketio = app.extensions["socketio_instance"]
        assert not socketio.test_client(app, flask_test_client=client).is_connected()
        assert not socketio.test_client(app, flask_test_client=client, auth={"token": "x" * 32}).is_connected()
        allowed = socketio.test_client(app, flask_test_client=client, auth={"token": token})
        assert allowed.is_connected()
        client.post(f"{API}/boards", json={"name": "y"}, headers={"Authorization": f"Bearer {token}"})
        assert [e["name"] for e in allowed.get_received()] == ["board_changed"]
        allowed.disconnect()
    finally:
        shutdown(app)


def test_control_layer_job_runs_with_its_settings(client):
    edges = np.zeros((64, 64, 4), np.uint8)
    edges[16:48, 16:48] = 255  # a white square on transparent: its outline is the control map
    asset = upload(client, encode(edges), category="control")
    control = {"model": "demo-controlnet", "preprocessor": "canny", "weight": 0.8, "begin": 0.0, "end": 1.0, "mode": "prompt"}
    layer = {"id": "ctl", "kind": "control", "image_id": asset["id"], "control": control}
    job = enqueue(client, document([layer], seed=12))
    [item] = wait_items(client, job["item_ids"])
    assert item["status"] == "completed", item
    generation = client.get(f"{API}/history/{job['generation_ids'][0]}").json
    [image_id] = generation["image_ids"]
    [recorded] = client.get(f"{API}/images/{image_id}/metadata").json["controls"]
    assert (recorded["preprocessor"], recorded["weight"], recorded["mode"]) == ("canny", 0.8, "prompt")
    bad = client.post(f"{API}/canvas/jobs", json={"document": document([{**layer, "control": {**control, "mode": "loud"}}])})
    assert bad.status_code == 422 and "mode" in bad.json["message"]
