"""A table of bad requests: each gets a 4xx with the one JSON error shape and no traceback, the
server stays healthy, and nothing is half-written (no image row or file, no queue item, no board
or canvas) by a refused request.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from db import queue
from db.models import Board, Canvas, Image as ImageRow, QueueItem
from server.app import create_app, shutdown

API = "/api/v1"
TOKEN = "t0ken-for-the-remote-test-app"
SMALL_LIMIT = 20_000
MISSING = "0" * 32


# --- request bodies ------------------------------------------------------------------------------


def png(width: int = 16, height: int = 16, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_png(side: int, seed: int = 0) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny valid PNG whose IHDR then claims side x side pixels (CRC fixed so only the size is wrong)."""
    data = bytearray(png(8, 8))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def upload(data: bytes, name: str = "x.png", **form) -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(data), name), **form}, "content_type": "multipart/form-data"}


def doc(layers=(), width: int = 64, height: int = 64, **params) -> dict[str, Any]:
    return {
        "bbox": {"x": 0, "y": 0, "width": width, "height": height},
        "layers": list(layers),
        "params": {"prompt": "p", "steps": 2, "seed": 1, **params},
    }


def job(**params) -> Callable[[dict], dict]:
    return lambda ctx: {"json": {"document": doc(**params)}}


def raster(image_id: str, layer_id: str = "l") -> dict[str, Any]:
    return {"id": layer_id, "kind": "raster", "image_id": image_id}


# --- the table -----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    method: str
    path: str | Callable[[dict], str]
    kwargs: dict[str, Any] | Callable[[dict], dict[str, Any]] = field(default_factory=dict)
    status: int = 422
    says: str | None = None  # a piece of the message
    app: str = "main"  # main | small (tiny upload limit) | remote (0.0.0.0, token)
    prefix: str = API  # "" for the static web files


CASES = [
    # body shape
    Case("malformed JSON", "POST", "/boards", {"data": '{"name": ', "content_type": "application/json"}, 400, "not valid JSON"),
    Case("form body where JSON is expected", "POST", "/boards", {"data": {"name": "x"}}, 415, "application/json"),
    Case("text/plain body", "POST", "/canvas/jobs", {"data": "hello", "content_type": "text/plain"}, 415),
    Case("JSON array as body", "POST", "/canvas/jobs", {"json": []}, 422),
    Case("wrong type: name is a number", "POST", "/boards", {"json": {"name": 12}}, 422, "name"),
    Case("wrong type: steps is a word", "POST", "/canvas/jobs", job(steps="many"), 422, "steps"),
    Case("wrong type: ids is a string", "POST", "/images/delete", {"json": {"ids": "abc"}}, 422, "ids"),
    Case("wrong type: queue ids are words", "POST", "/queue/retry", {"json": {"ids": ["one"]}}, 422),
    Case("missing field: board name", "POST", "/boards", {"json": {}}, 422, "name"),
    Case("missing field: params", "POST", "/canvas/jobs", {"json": {"document": {"bbox": doc()["bbox"]}}}, 422, "params"),
    Case("missing field: empty retry list", "POST", "/queue/retry", {"json": {"ids": []}}, 422),
    Case("extra field on a board", "POST", "/boards", {"json": {"name": "x", "colour": "red"}}, 422, "colour"),
    Case("extra field in params", "POST", "/canvas/jobs", job(sampler="euler"), 422, "sampler"),
    Case("JSON nested 100000 deep", "POST", "/boards", {"data": "[" * 100_000 + "]" * 100_000, "content_type": "application/json"}, 400, "nested"),
    # canvas jobs
    Case("bbox width not a multiple of 8", "POST", "/canvas/jobs", job(width=100), 422, "96 or 104"),
    Case("bbox height not a multiple of 8", "POST", "/canvas/jobs", job(height=510), 422, "504 or 512"),
    Case("100000-pixel side", "POST", "/canvas/jobs", job(width=100_000), 422, "width"),
    Case("batch 0", "POST", "/canvas/jobs", job(batch_size=0), 422, "batch_size"),
    Case("batch 1000", "POST", "/canvas/jobs", job(batch_size=1000), 422, "batch_size"),
    Case("steps 0", "POST", "/canvas/jobs", job(steps=0), 422, "steps"),
    Case("strength 0", "POST", "/canvas/jobs", job(strength=0), 422, "strength"),
    Case("infill colour channel over 255", "POST", "/canvas/jobs", job(infill_color=[999, 0, 0]), 422, "infill_color"),
    Case("unknown scheduler", "POST", "/canvas/jobs", job(scheduler="warp-drive"), 422, "unknown scheduler"),
    Case("unknown model", "POST", "/canvas/jobs", job(model="no-such-model"), 404, "no-such-model"),
    Case("controlnet model as main model", "POST", "/canvas/jobs", job(model="demo-controlnet"), 422, "controlnet"),
    Case("unknown LoRA id", "POST", "/canvas/jobs", job(loras=[{"model": "no-such-lora"}]), 422, "not an installed LoRA"),
    Case("main model as a LoRA", "POST", "/canvas/jobs", job(loras=[{"model": "demo", "weight": 1}]), 422, "not a LoRA"),
    Case("LoRA weight 10", "POST", "/canvas/jobs", job(loras=[{"model": "demo", "weight": 10}]), 422, "weight"),
    Case("11 LoRAs", "POST", "/canvas/jobs", job(loras=[{"model": f"l{i}"} for i in range(11)]), 422, "loras"),
    Case("layer with an unknown image id", "POST", "/canvas/jobs", {"json": {"document": doc([raster(MISSING)])}}, 404, MISSING),
    Case("layer image id with ../", "POST", "/canvas/jobs", {"json": {"document": doc([raster("../../db.sqlite")])}}, 422, "image_id"),
    Case(
        "duplicate layer ids",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([raster(ctx["image"]), raster(ctx["image"])])}},
        422,
        "unique",
    ),
    Case("bbox x scale over 4096 a side", "POST", "/canvas/jobs", job(width=2048, height=2048, scale=4), 422, "exceeds 4096"),
    Case(
        "regional layer without a prompt",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "regional_guidance"}])}},
        422,
        "needs a prompt",
    ),
    Case(
        "region strength 1.5",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "regional_guidance",
                                                "region": {"prompt": "a boat", "strength": 1.5}}])}},
        422,
        "strength",
    ),
    Case("unbalanced parentheses in the prompt", "POST", "/canvas/jobs", job(prompt="smile :)"), 422, "unbalanced parentheses"),
    Case("malformed blend in the negative prompt", "POST", "/canvas/jobs", job(negative_prompt='("a", "b").blend(0.7'), 422, "negative prompt"),
    Case(
        "unbalanced parentheses in a region prompt",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "regional_guidance",
                                                "region": {"prompt": "(a boat"}}])}},
        422,
        "region layer 'l'",
    ),
    Case(
        "control layer without control settings",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "control"}])}},
        422,
        "no control settings",
    ),
    Case(
        "control layer naming a main model",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "control", "control": {"model": "demo"}}])}},
        422,
        "not an installed ControlNet",
    ),
    Case("both document and canvas_id", "POST", "/canvas/jobs", lambda ctx: {"json": {"document": doc(), "canvas_id": ctx["canvas"]}}, 422, "not both"),
    Case("neither document nor canvas_id", "POST", "/canvas/jobs", {"json": {"priority": 1}}, 422, "either"),
    Case("unknown canvas_id", "POST", "/canvas/jobs", {"json": {"canvas_id": MISSING}}, 404, MISSING),
    Case("unknown canvas version", "POST", "/canvas/jobs", lambda ctx: {"json": {"canvas_id": ctx["canvas"], "version": 9}}, 404, "version 9"),
    Case("canvas version beyond 64 bits", "POST", "/canvas/jobs", lambda ctx: {"json": {"canvas_id": ctx["canvas"], "version": 10**20}}, 422, "version"),
    Case("unknown board for a job", "POST", "/canvas/jobs", {"json": {"document": doc(), "board_id": MISSING}}, 404, MISSING),
    # uploads
    Case("broken PNG", "POST", "/images", upload(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20), 415),
    Case("truncated PNG", "POST", "/images", upload(noisy_png(64)[:-400]), 415, "truncated"),
    Case("a GIF", "POST", "/images", upload(gif(), "x.gif"), 415, "GIF"),
    Case("a text file as image", "POST", "/images", upload(b"just some words\n" * 10, "notes.png"), 415),
    Case("an empty file", "POST", "/images", upload(b"", "empty.png"), 415, "empty"),
    Case("no 'file' field", "POST", "/images", {"data": {"upload": (io.BytesIO(png()), "x.png")}, "content_type": "multipart/form-data"}, 400, "'file'"),
    Case("upload sent as JSON", "POST", "/images", {"json": {"file": "aGVsbG8="}}, 400, "'file'"),
    Case("decompression bomb (100000x100000 IHDR)", "POST", "/images", upload(bomb_png()), 413, "pixels"),
    Case("upload to an unknown board", "POST", "/images", upload(png(), board_id=MISSING), 404, MISSING),
    Case("upload with ../ as board id", "POST", "/images", upload(png(), board_id="../../x"), 422),
    Case("upload with an unknown category", "POST", "/images", upload(png(), category="secret"), 422, "category"),
    Case("upload over the byte limit", "POST", "/images", upload(noisy_png(100)), 413, str(SMALL_LIMIT), app="small"),
    Case("upload far over the byte limit", "POST", "/images", upload(noisy_png(700)), 413, "too large", app="small"),
    # unknown ids and paths
    Case("unknown board", "GET", f"/boards/{MISSING}", {}, 404, MISSING),
    Case("unknown image", "GET", f"/images/{MISSING}", {}, 404, MISSING),
    Case("unknown image file", "GET", f"/images/{MISSING}/file", {}, 404),
    Case("unknown canvas", "GET", f"/canvas/{MISSING}", {}, 404, MISSING),
    Case("unknown queue item", "GET", "/queue/items/987654", {}, 404, "987654"),
    Case("queue item id beyond 64 bits", "GET", f"/queue/items/{10**20}", {}, 404, str(10**20)),
    Case("cancel an item id beyond 64 bits", "POST", f"/queue/items/{10**20}/cancel", {}, 404),
    Case("load a canvas version beyond 64 bits", "GET", lambda ctx: f"/canvas/{ctx['canvas']}?version={10**20}", {}, 422, "version"),
    Case("cancel an unknown queue item", "POST", "/queue/items/987654/cancel", {}, 404),
    Case("unknown generation", "GET", f"/history/{MISSING}", {}, 404),
    Case("unknown model to delete", "DELETE", "/models/nope", {}, 404, "nope"),
    Case("built-in model to delete", "DELETE", "/models/demo", {}, 422, "built in"),
    Case("../ in a board id", "PATCH", "/boards/..", {"json": {"name": "x"}}, 404),
    Case("encoded ../ in a board id", "GET", "/boards/..%2F..%2Fdb.sqlite", {}, 404),
    Case("../ in an image id", "GET", "/images/..%2F..%2Fconfig.json/file", {}, 404),
    Case("image id that is not an id", "GET", "/images/..config/thumbnail", {}, 422, "invalid image id"),
    Case("../ in a static path", "GET", "/../server/app.py", {}, 404, prefix=""),
    Case("encoded ../ in a static path", "GET", "/%2e%2e/server/app.py", {}, 404, prefix=""),
    Case("encoded / in a static path", "GET", "/..%2F..%2Fetc%2Fpasswd", {}, 404, prefix=""),
    Case("unknown API route", "GET", "/nothing-here", {}, 404),
    Case("method not allowed", "DELETE", "/health", {}, 405),
    # boards
    Case("board moved under its own child", "PATCH", lambda ctx: f"/boards/{ctx['parent']}", lambda ctx: {"json": {"parent_id": ctx["child"]}}, 409, "sub-boards"),
    Case("board moved under itself", "PATCH", lambda ctx: f"/boards/{ctx['parent']}", lambda ctx: {"json": {"parent_id": ctx["parent"]}}, 409),
    Case("board under an unknown parent", "POST", "/boards", {"json": {"name": "x", "parent_id": MISSING}}, 404, MISSING),
    Case("empty board name", "POST", "/boards", {"json": {"name": ""}}, 422, "empty"),
    Case("blank board name", "POST", "/boards", {"json": {"name": "   "}}, 422, "empty"),
    Case("1000-character board name", "POST", "/boards", {"json": {"name": "b" * 1000}}, 422, "200"),
    Case("rename a board to nothing", "PATCH", lambda ctx: f"/boards/{ctx['parent']}", {"json": {"name": ""}}, 422, "empty"),
    Case("unknown cover image", "PATCH", lambda ctx: f"/boards/{ctx['parent']}", {"json": {"cover_image_id": MISSING}}, 404, MISSING),
    Case("reorder with a stranger", "POST", "/boards/reorder", lambda ctx: {"json": {"parent_id": ctx["parent"], "ordered_ids": [MISSING]}}, 422, "ordered_ids"),
    Case("bad include_images flag", "DELETE", lambda ctx: f"/boards/{ctx['parent']}?include_images=perhaps", {}, 422, "include_images"),
    # listing filters
    Case("bad cursor", "GET", "/images?cursor=not-a-cursor", {}, 422, "cursor"),
    Case("bad date filter", "GET", "/images?created_from=yesterday-ish", {}, 422, "created_from"),
    Case("limit 0", "GET", "/images?limit=0", {}, 422, "limit"),
    Case("unknown origin filter", "GET", "/images?origin=stolen", {}, 422, "origin"),
    Case("unknown filter", "GET", "/images?colour=red", {}, 422, "colour"),
    Case("queue after_id beyond 64 bits", "GET", f"/queue/items?after_id={10**20}", {}, 422, "after_id"),
    Case("unknown queue status filter", "GET", "/queue/items?status=sleeping", {}, 422, "status"),
    Case("list images of an unknown board", "GET", f"/images?board_id={MISSING}", {}, 404, MISSING),
    # images
    Case("move images to an unknown board", "PATCH", "/images/batch", lambda ctx: {"json": {"ids": [ctx["image"]], "board_id": MISSING}}, 404, MISSING),
    Case("star an unknown image", "PATCH", "/images/batch", lambda ctx: {"json": {"ids": [ctx["image"], MISSING], "starred": True}}, 404, MISSING),
    Case("delete an unknown image", "POST", "/images/delete", {"json": {"ids": [MISSING]}}, 404, MISSING),
    # canvases
    Case("save a canvas that is not a document", "POST", "/canvas", {"json": {"document": {"layers": "all of them"}}}, 422),
    Case("save a new canvas without a name", "POST", "/canvas", {"json": {"document": doc()}}, 422, "needs a name"),
    Case("save to an unknown canvas", "POST", "/canvas", {"json": {"document": doc(), "canvas_id": MISSING}}, 404, MISSING),
    Case("rename a canvas to 1000 characters", "PATCH", lambda ctx: f"/canvas/{ctx['canvas']}", {"json": {"name": "c" * 1000}}, 422),
    # queue
    Case("retry a completed item", "POST", "/queue/retry", lambda ctx: {"json": {"ids": [ctx["completed"]]}}, 409, "completed"),
    Case("cancel a finished item", "POST", lambda ctx: f"/queue/items/{ctx['completed']}/cancel", {}, 409, "already completed"),
    Case("retry an unknown item", "POST", "/queue/retry", {"json": {"ids": [987654]}}, 404, "987654"),
    Case("retry an id beyond 64 bits", "POST", "/queue/retry", {"json": {"ids": [10**20]}}, 422, "ids"),
    # models
    Case("install from an empty source", "POST", "/models/install", {"json": {"source": ""}}, 422, "source"),
    # hardening: install, dates, deep boards (issue 10)
    Case("install the database file", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/invoke_canvas.db"}}, 422, "data folder"),
    Case("install the database's WAL file", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/invoke_canvas.db-wal"}}, 422, "data folder"),
    Case("install the database through ..", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/images/../invoke_canvas.db"}}, 422, "data folder"),
    Case("install the data folder itself", "POST", "/models/install", lambda ctx: {"json": {"source": ctx["root"]}}, 422, "data folder"),
    Case("install the folder above the data folder", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/.."}}, 422, "data folder"),
    Case("install an image file", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/images/{ctx['image']}.png"}}, 422, "data folder"),
    Case("install the thumbnails folder", "POST", "/models/install", lambda ctx: {"json": {"source": f"{ctx['root']}/thumbnails"}}, 422, "data folder"),
    Case("install with a config in the data folder", "POST", "/models/install", lambda ctx: {"json": {"source": "org/model", "config": ctx["root"]}}, 422, "data folder"),
    Case("install a device", "POST", "/models/install", {"json": {"source": "/dev/null"}}, 422, "not a regular file"),
    Case("install a path with a NUL", "POST", "/models/install", {"json": {"source": "/tmp/a\x00b"}}, 422, "NUL"),
    Case("created_to past year 9999 in UTC", "GET", "/images?created_to=9999-12-31T23:59:59-14:00", {}, 422, "created_to"),
    Case("created_from before year 1 in UTC", "GET", "/images?created_from=0001-01-01T00:00:00%2B14:00", {}, 422, "created_from"),
    # linear-time parsing (issue 10)
    Case("2500 weighted groups in the prompt", "POST", "/canvas/jobs", job(prompt="(a)" * 2500), 422, "characters, and this one has"),
    Case("parentheses nested 40 deep", "POST", "/canvas/jobs", job(prompt="(" * 40 + "a" + ")" * 40), 422, "nested 40 deep"),
    Case(
        "weighting syntax over the job's budget",
        "POST",
        "/canvas/jobs",
        lambda ctx: {"json": {"document": doc([{**raster(ctx["image"]), "kind": "regional_guidance",
                                                "region": {"prompt": "(a boat at dusk) " * 115, "negative_prompt": "(blur) " * 280}}],
                                              prompt="(a lighthouse at dusk) " * 86, negative_prompt="(ugly) " * 280)}},
        422,
        "in all",
    ),
    # auth
    Case("missing token", "GET", "/health", {}, 401, "token", app="remote"),
    Case("wrong token", "GET", "/images", {"headers": {"Authorization": "Bearer " + "x" * 30}}, 401, "token", app="remote"),
    Case("wrong auth scheme", "POST", "/boards", {"json": {"name": "x"}, "headers": {"Authorization": "Basic " + TOKEN}}, 401, app="remote"),
    Case("wrong token in the query", "GET", "/images/x/file?token=guess", {}, 401, app="remote"),
    Case("token in the URL of a POST", "POST", f"/queue/clear?token={TOKEN}", {}, 401, "image files", app="remote"),
    Case("token in the URL of a listing", "GET", f"/images?token={TOKEN}", {}, 401, "image files", app="remote"),
    Case("token in the URL of a metadata GET", "GET", lambda ctx: f"/images/{ctx['image']}/metadata?token={TOKEN}", {}, 401, app="remote"),
    Case("forged signature on an image URL", "GET", lambda ctx: f"/images/{ctx['image']}/file?exp=99999999999&sig=AAAA", {}, 401, app="remote"),
    # Host and Origin (DNS rebinding, cross-site requests; issue 10)
    Case("foreign Host header", "GET", "/images", {"headers": {"Host": "evil.example"}}, 403, "host"),
    Case("foreign Host header on the page", "GET", "/", {"headers": {"Host": "evil.example:9090"}}, 403, "host", prefix=""),
    Case("malformed Host header", "GET", "/health", {"headers": {"Host": "[::1"}}, 403, "host"),
    Case("cross-origin bodiless POST", "POST", "/queue/clear", {"headers": {"Origin": "http://evil.example"}}, 403, "another origin"),
    Case("cross-origin pause", "POST", "/queue/pause", {"headers": {"Origin": "http://evil.example"}}, 403, "another origin"),
    Case("cross-origin cancel of an item", "POST", lambda ctx: f"/queue/items/{ctx['completed']}/cancel", {"headers": {"Origin": "null"}}, 403),
    Case("cross-origin multipart upload", "POST", "/images", {**upload(png()), "headers": {"Origin": "http://evil.example"}}, 403, "another origin"),
    Case("cross-origin board delete", "DELETE", lambda ctx: f"/boards/{ctx['parent']}", {"headers": {"Origin": "http://evil.example"}}, 403),
    Case("cross-site fetch without Origin", "POST", "/boards", {"json": {"name": "x"}, "headers": {"Sec-Fetch-Site": "cross-site"}}, 403, "another site"),
    # static files: only what the app needs
    Case("npm metadata", "GET", "/package.json", {}, 404, prefix=""),
    Case("web tests", "GET", "/tests/fakes.js", {}, 404, prefix=""),
    Case("a vendored package's files beyond its modules", "GET", "/node_modules/konva/package.json", {}, 404, prefix=""),
    Case("a vendored package the page does not import", "GET", "/node_modules/ws/index.js", {}, 404, prefix=""),
]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    made = {
        "main": create_app({"root": str(tmp_path_factory.mktemp("bad-main")), "device": "cpu", "start_worker": False}),
        "small": create_app({"root": str(tmp_path_factory.mktemp("bad-small")), "device": "cpu", "start_worker": False, "max_upload_bytes": SMALL_LIMIT}),
        "remote": create_app({"root": str(tmp_path_factory.mktemp("bad-remote")), "device": "cpu", "start_worker": False, "host": "0.0.0.0", "token": TOKEN}),
    }
    yield made
    for app in made.values():
        shutdown(app)


@pytest.fixture(scope="module")
def ctx(apps):
    """Things that exist in the main app: a board with a sub-board, an image, a canvas, a completed item."""
    client = apps["main"].test_client()
    parent = client.post(f"{API}/boards", json={"name": "Parent"}).json["id"]
    child = client.post(f"{API}/boards", json={"name": "Child", "parent_id": parent}).json["id"]
    image = client.post(f"{API}/images", **upload(png(8, 8, "RGBA"))).json["id"]
    canvas = client.post(f"{API}/canvas", json={"name": "c", "document": doc()}).json["id"]
    [item_id] = client.post(f"{API}/canvas/jobs", json={"document": doc()}).json["item_ids"]
    db = apps["main"].extensions["invoke_canvas"].db
    assert queue.claim_next(db).id == item_id  # the worker is off: play its part
    queue.finish(db, item_id, "completed")
    root = str(apps["main"].extensions["invoke_canvas"].config.root)
    return {"parent": parent, "child": child, "image": image, "canvas": canvas, "completed": item_id, "root": root}


def snapshot(app) -> dict[str, Any]:
    services = app.extensions["invoke_canvas"]
    with services.db.read() as s:
        rows = {model.__name__: s.scalar(select(func.count()).select_from(model)) for model in (ImageRow, QueueItem, Board, Canvas)}
    files = {folder: sorted(p.name for p in (services.config.root / folder).iterdir()) for folder in ("images", "thumbnails")}
    return {"rows": rows, "files": files}


def test_the_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_request(case: Case, apps, ctx):
    app = apps[case.app]
    client = app.test_client()
    path = case.prefix + (case.path(ctx) if callable(case.path) else case.path)
    kwargs = case.kwargs(ctx) if callable(case.kwargs) else case.kwargs
    before = snapshot(app)

    response = client.open(path, method=case.method, **kwargs)

    text = response.get_data(as_text=True)
    assert response.status_code == case.status, text
    assert response.is_json, text
    body = response.json
    assert set(body) == {"error", "message", "detail"}, body
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in text and 'File "' not in text and "site-packages" not in text
    if case.says:
        assert case.says in body["message"], body["message"]
    assert snapshot(app) == before
    health = client.get(f"{API}/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert health.status_code == 200
    response.close()
