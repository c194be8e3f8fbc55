"""The live lane (server/live.py) on the real app, worker and demo model, and the live settings table
(invoke_core/live.py): supersede rules, priority, renders hidden from the gallery until kept, bad input.

The browser side (Live toggle, debounce, the render on screen) is tests/test_browser_live.py.
"""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from db import images as db_images
from db import queue
from db.queue import NewJob
from db.session import Database
from invoke_core import families, limits
from invoke_core import live as live_settings
from invoke_core.model_records import ModelRecord
from invoke_core.schedulers import scheduler_names
from server import live
from server.app import create_app, shutdown

API = "/api/v1"
FINISHED = ("completed", "failed", "canceled")
DELETED = "deleted"  # a live item the lane cleaned up with its generation (server/live.py): GET answers 404


# --- helpers ---------------------------------------------------------------------------------------------


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def sketch(seed: int, size: int = 64) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    return pixels


def upload_layer(client, pixels: np.ndarray) -> str:
    response = client.post(
        f"{API}/images", data={"file": (io.BytesIO(png(pixels)), "layer.png"), "category": "layer"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def live_document(client, seed: int = 0, size: int = 64, prompt: str = "a lighthouse", **params) -> dict:
    """A painted box (image to image) with the demo model's live settings from the models API."""
    demo = next(m for m in client.get(f"{API}/models").json if m["id"] == "demo")
    fast = demo["live_defaults"]
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": [{"id": "paint", "kind": "raster", "image_id": upload_layer(client, sketch(seed, size))}],
        "params": {"prompt": prompt, "model": "demo", "mask_blur": 0, **fast, **params},
    }


def post_live(client, doc: dict, status: int = 201, lane: str | None = None) -> dict:
    """POST /live/jobs; `lane`: the body's `client` key (a browser tab's lane)."""
    response = client.post(f"{API}/live/jobs", json={"document": doc, **({"client": lane} if lane else {})})
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def normal_job(client, **params) -> int:
    body = {
        "document": {
            "bbox": {"x": 0, "y": 0, "width": 64, "height": 64},
            "layers": [],
            "params": {"prompt": "a normal job", "steps": 2, "seed": 5, "model": "demo", **params},
        },
        "priority": 100,  # the highest the API takes for a normal job
    }
    response = client.post(f"{API}/canvas/jobs", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["item_ids"][0]


def item(client, item_id: int) -> dict:
    response = client.get(f"{API}/queue/items/{item_id}")
    return {"id": item_id, "status": DELETED} if response.status_code == 404 else response.json


def wait_items(client, ids, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = [item(client, i) for i in ids]
        if all(i["status"] in (*FINISHED, DELETED) for i in items):
            return items
        assert time.monotonic() < deadline, f"items not finished: {items}"
        time.sleep(0.05)


def image_ids(client, item_id: int) -> list[str]:
    found = item(client, item_id)
    if found["status"] == DELETED:
        return []
    generation_id = found["generation_id"]
    return client.get(f"{API}/history/{generation_id}").json["image_ids"]


def gallery_ids(client, **query) -> set[str]:
    page = client.get(f"{API}/images", query_string={"limit": 500, **query}).json
    return {i["id"] for i in page["items"]}


class Events:
    def __init__(self, socket_client):
        self.client = socket_client
        self.log: list[tuple[str, dict]] = []

    def named(self, name: str) -> list[dict]:
        self.log += [(e["name"], e["args"][0]) for e in self.client.get_received()]
        return [d for n, d in self.log if n == name]

    def wait(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.named("")
            if any(predicate(n, d) for n, d in self.log):
                return
            assert time.monotonic() < deadline, f"event not seen; got {[n for n, _ in self.log]}"
            time.sleep(0.02)


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("live-root")), "device": "cpu"})
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
    yield
    client = app.test_client()
    client.post(f"{API}/queue/resume")
    active = [i["id"] for s in ("pending", "in_progress") for i in client.get(f"{API}/queue/items?status={s}").json]
    client.post(f"{API}/queue/cancel-pending")
    for item_id in active:
        client.post(f"{API}/queue/items/{item_id}/cancel")
    wait_items(client, active)


# --- the lane ------------------------------------------------------------------------------------------------


def test_live_outranks_normal_jobs_and_the_queue_goes_on(client):
    assert client.post(f"{API}/queue/pause").status_code == 200
    normal = [normal_job(client), normal_job(client)]
    job = post_live(client, live_document(client, seed=1))
    listed = item(client, job["item_id"])
    assert listed["live"] is True and listed["priority"] == live.LIVE_PRIORITY > 100
    assert item(client, normal[0])["live"] is False
    client.post(f"{API}/queue/resume")
    done = wait_items(client, [job["item_id"], *normal])
    assert [i["status"] for i in done] == ["completed"] * 3, done
    started = [i["started_at"] for i in done]
    assert started[0] < started[1] < started[2], "the live item ran first, then the others in their order"


def test_newer_live_job_cancels_the_older_pending_one(client, events):
    client.post(f"{API}/queue/pause")
    first = post_live(client, live_document(client, seed=2))
    assert first["superseded"] == [] and first["seed"] == live.LIVE_SEED  # no seed given: the lane's fixed one
    second = post_live(client, live_document(client, seed=3))
    third = post_live(client, live_document(client, seed=4))
    assert second["superseded"] == [first["item_id"]] and third["superseded"] == [second["item_id"]]
    assert item(client, first["item_id"])["status"] == "canceled", "canceled; cleaned up when the next live job ends"
    pending = [i for i in client.get(f"{API}/queue/items?status=pending").json if i["live"]]
    assert [i["id"] for i in pending] == [third["item_id"]], "never more than one live item waits"
    # the clients heard each supersede, marked live
    canceled = [d for d in events.named("queue_item_status_changed") if d["status"] == "canceled"]
    assert {d["item_id"] for d in canceled} >= {first["item_id"], second["item_id"]}
    assert all(d["live"] for d in canceled)
    assert all("superseded" in d["error_message"] for d in canceled if d["item_id"] in (first["item_id"], second["item_id"]))
    client.post(f"{API}/queue/resume")
    done = wait_items(client, [third["item_id"]])
    assert done[0]["status"] == "completed"
    deadline = time.monotonic() + 20  # the live job's cleanup runs just after its status is committed
    while {item(client, i)["status"] for i in (first["item_id"], second["item_id"])} != {DELETED} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {item(client, i)["status"] for i in (first["item_id"], second["item_id"])} == {DELETED}, "cleaned up with their generations"
    assert image_ids(client, first["item_id"]) == [] and image_ids(client, second["item_id"]) == []


def test_each_client_has_its_own_lane(client):
    """Two tabs painting live: each one's newer job supersedes only its own; the two take turns."""
    client.post(f"{API}/queue/pause")
    a1 = post_live(client, live_document(client, seed=41), lane="tab-a")
    b1 = post_live(client, live_document(client, seed=42), lane="tab-b")
    assert b1["superseded"] == [], "another tab's job is not superseded"
    a2 = post_live(client, live_document(client, seed=43), lane="tab-a")
    assert a2["superseded"] == [a1["item_id"]]
    shared = post_live(client, live_document(client, seed=44))  # no key: the shared lane, apart from both
    assert shared["superseded"] == []
    pending = {i["id"] for i in client.get(f"{API}/queue/items?status=pending").json if i["live"]}
    assert pending == {b1["item_id"], a2["item_id"], shared["item_id"]}, "one waiting per client"
    client.post(f"{API}/queue/resume")
    done = wait_items(client, [b1["item_id"], a2["item_id"], shared["item_id"]])
    assert [i["status"] for i in done] == ["completed"] * 3
    assert done[0]["started_at"] < done[1]["started_at"] < done[2]["started_at"], "in their order: turns"
    bad = client.post(f"{API}/live/jobs", json={"document": live_document(client, seed=45), "client": "tab a/../x"})
    assert bad.status_code == 422 and "client" in bad.get_data(as_text=True)
    assert client.post(f"{API}/live/jobs", json={"document": live_document(client, seed=45), "client": "k" * 65}).status_code == 422


def test_newer_live_job_stops_the_running_one_at_its_next_step(client, events):
    slow = post_live(client, live_document(client, seed=5, steps=400, scheduler="euler", strength=1.0))
    events.wait(lambda n, d: n == "generation_progress" and d["item_id"] == slow["item_id"] and d["step"] >= 1)
    stopped_at = time.monotonic()
    newer = post_live(client, live_document(client, seed=6))
    assert newer["superseded"] == [slow["item_id"]]
    old, new = wait_items(client, [slow["item_id"], newer["item_id"]])
    assert old["status"] in ("canceled", DELETED) and time.monotonic() - stopped_at < 20
    assert new["status"] == "completed"
    steps = [d["step"] for d in events.named("generation_progress") if d["item_id"] == slow["item_id"]]
    assert max(steps) < 400, "stopped before its last step"
    assert image_ids(client, slow["item_id"]) == []
    assert client.post(f"{API}/queue/retry", json={"ids": [slow["item_id"]]}).status_code in (404, 409)  # 404: cleaned up


def test_live_renders_stay_out_of_the_gallery_until_kept(client, events):
    boards = client.post(f"{API}/boards", json={"name": "Live keeps"}).json
    doc = live_document(client, seed=7, prompt="zebracorn sketch")
    job = post_live(client, doc)
    [done] = wait_items(client, [job["item_id"]])
    assert done["status"] == "completed"
    before = client.get(f"{API}/images/counts").json  # after the job: its end cleans up older live layers
    [render] = image_ids(client, job["item_id"])
    record = client.get(f"{API}/images/{render}").json
    assert record["category"] == "live" and record["board_id"] is None
    assert client.get(f"{API}/images/{render}/file").status_code == 200  # the web shows it
    assert render not in gallery_ids(client)
    assert render not in gallery_ids(client, search="zebracorn")
    assert render not in gallery_ids(client, board_id="none")
    assert client.get(f"{API}/images/counts").json == before
    assert not [d for d in events.named("image_added") if d["image"]["id"] == render]
    # keep: a gallery image, filed in the board, announced
    kept = client.post(f"{API}/live/images/{render}/keep", json={"board_id": boards["id"]})
    assert kept.status_code == 200, kept.get_data(as_text=True)
    assert kept.json["category"] == "general" and kept.json["board_id"] == boards["id"]
    assert render in gallery_ids(client, search="zebracorn")
    assert render in gallery_ids(client, board_id=boards["id"])
    def in_board(counts):
        return sum(c["count"] for c in counts if c["board_id"] == boards["id"])

    assert in_board(before) == 0 and in_board(client.get(f"{API}/images/counts").json) == 1, "counted once kept, not before"
    assert [d for d in events.named("image_added") if d["image"]["id"] == render]
    again = client.post(f"{API}/live/images/{render}/keep", json={})  # a double click: nothing changes
    assert again.status_code == 200 and again.json["board_id"] == boards["id"]


def test_superseded_renders_are_deleted(client, app):
    done = []
    for seed in range(live.LIVE_RETAINED + 2):
        job = post_live(client, live_document(client, seed=20 + seed))
        done += wait_items(client, [job["item_id"]])
    assert [d["status"] for d in done] == ["completed"] * len(done)
    renders = [image_ids(client, d["id"]) for d in done]
    gone, kept = renders[:2], renders[2:]
    assert all(r == [] for r in gone), "the oldest renders were deleted"
    assert all(len(r) == 1 for r in kept)
    s = app.extensions["invoke_canvas"]
    with s.db.read() as session:
        from sqlalchemy import func, select

        from db.models import Image as ImageRow

        count = session.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.category == "live"))
    assert count == live.LIVE_RETAINED


def test_bad_live_input_is_a_clear_4xx(client):
    doc = live_document(client, seed=30)
    cases = [
        ({"document": {**doc, "params": {**doc["params"], "batch_size": 2}}}, 422, "one image"),
        ({"document": {**doc, "params": {**doc["params"], "model": "no-such-model"}}}, 404, "no-such-model"),
        ({"document": {**doc, "params": {**doc["params"], "scheduler": "warp"}}}, 422, "warp"),
        ({"document": {**doc, "params": {**doc["params"], "steps": 0}}}, 422, None),
        ({"document": doc, "priority": 5}, 422, None),  # the lane sets the priority
        ({}, 422, None),
    ]
    for body, status, words in cases:
        response = client.post(f"{API}/live/jobs", json=body)
        assert response.status_code == status, (body, response.get_data(as_text=True))
        assert set(response.json) >= {"error", "message"}
        if words:
            assert words in response.json["message"], response.json
    assert client.post(f"{API}/live/jobs", data="{", content_type="application/json").status_code == 400
    layer = doc["layers"][0]["image_id"]
    assert client.post(f"{API}/live/images/{layer}/keep", json={}).status_code == 409  # a layer asset
    assert client.post(f"{API}/live/images/{'0' * 32}/keep", json={}).status_code == 404
    assert client.post(f"{API}/live/images/not-an-id/keep", json={}).status_code in (404, 422)
    job = post_live(client, doc)
    [done] = wait_items(client, [job["item_id"]])
    [render] = image_ids(client, done["id"])
    missing_board = client.post(f"{API}/live/images/{render}/keep", json={"board_id": "f" * 32})
    assert missing_board.status_code == 404
    assert client.get(f"{API}/images/{render}").json["category"] == "live", "a refused keep changes nothing"


# --- the live settings ---------------------------------------------------------------------------------------


def test_config_serves_every_familys_live_settings_within_the_limits(client):
    config = client.get(f"{API}/config").json
    served = config["live"]
    assert served["priority"] == live.LIVE_PRIORITY and served["seed"] == live.LIVE_SEED
    assert 200 <= served["debounce_ms"] <= 500
    assert set(served["families"]) == set(families.NAMES)
    for name, fast in served["families"].items():
        assert fast["scheduler"] in config["families"][name]["schedulers"], name
        assert limits.STEPS.low <= fast["steps"] <= 12 and limits.CFG_SCALE.low <= fast["cfg_scale"] <= limits.CFG_SCALE.high
        assert 0 < fast["strength"] <= 1
    models = {m["id"]: m for m in client.get(f"{API}/models").json}
    assert models["demo"]["live_defaults"] == {"steps": 4, "cfg_scale": 1.0, "scheduler": "lcm", "strength": 0.6}
    assert models["demo-flux-schnell"]["live_defaults"]["steps"] == 4 if "demo-flux-schnell" in models else True


def _record(tmp_path, name: str, family: str = "sd-1", kind: str = "main", unet: dict | None = None) -> ModelRecord:
    folder = tmp_path / name
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps(unet or {"time_cond_proj_dim": None}))
    return ModelRecord(id=name, name=name, family=family, kind=kind, format="diffusers", path=str(folder))


def test_distilled_models_and_loras_get_their_own_live_settings(tmp_path):
    assert live_settings.live_defaults(_record(tmp_path, "dreamshaper-8")) is None  # the family's
    assert live_settings.live_defaults(_record(tmp_path, "my-lcm-dreamshaper", unet={"time_cond_proj_dim": 256})) == live_settings.LCM
    assert live_settings.live_defaults(_record(tmp_path, "plain-name", unet={"time_cond_proj_dim": 256})) == live_settings.LCM
    assert live_settings.live_defaults(_record(tmp_path, "sdxl_lightning_4step", family="sdxl")) == live_settings.LIGHTNING
    assert live_settings.live_defaults(_record(tmp_path, "sd-turbo")) == live_settings.TURBO
    assert live_settings.live_defaults(_record(tmp_path, "lcm-lora-sdv1-5", kind="lora")) == live_settings.LCM
    assert live_settings.live_defaults(_record(tmp_path, "detail-tweaker", kind="lora")) is None
    assert live_settings.live_defaults(_record(tmp_path, "turbocharged", family="sdxl")) is None  # words, not letters
    for fast in (live_settings.LCM, live_settings.TURBO, live_settings.LIGHTNING):
        assert fast.scheduler in scheduler_names("diffusion") and fast.cfg_scale <= 1  # no CFG branch


# --- the database op on SQLite and PostgreSQL ------------------------------------------------------------------


def test_enqueue_superseding_never_leaves_two_waiting_under_concurrency(tmp_path, db_url):
    db = Database(tmp_path, url=db_url)
    try:
        job = NewJob(request={"params": {}}, seed=1)
        errors: list[BaseException] = []
        worst = [0]

        def writer() -> None:
            try:
                for _ in range(15):
                    queue.enqueue_superseding(db, job, live.LIVE_PRIORITY)
                    with db.read() as s:
                        from sqlalchemy import func, select

                        from db.models import QueueItem

                        waiting = s.scalar(
                            select(func.count()).select_from(QueueItem)
                            .where(QueueItem.priority == live.LIVE_PRIORITY, QueueItem.status == "pending")
                        )
                    worst[0] = max(worst[0], waiting)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=writer) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert worst[0] == 1
        counts = {}
        for i in queue.list_items(db, limit=1000):
            counts[i.status] = counts.get(i.status, 0) + 1
        assert counts == {"pending": 1, "canceled": 44}
        # a normal item is never superseded
        (normal,) = queue.enqueue(db, [job])
        queue.enqueue_superseding(db, job, live.LIVE_PRIORITY)
        assert queue.get_item(db, normal.id).status == "pending"
        # and the live one is claimed first
        assert live.is_live(queue.claim_next(db))
    finally:
        db.dispose()


# --- remote workers (the scale-out path): real PostgreSQL and Redis ---------------------------------------------


def test_remote_workers_claim_live_first_and_stop_a_superseded_run(tmp_path, pg_server, pg_template, redis_server):
    from types import SimpleNamespace

    import redis

    from conftest import new_pg_database
    from server.config import load_config
    from server.jobs import split_batch
    from server.scale.remote_queue import RemoteQueue
    from server.scale.worker_process import RemoteWorker
    from server.schemas import JobDocumentIn

    redis.Redis.from_url(redis_server.url).flushdb()
    cfg = load_config({"root": tmp_path, "device": "cpu", "database_url": new_pg_database(pg_server, pg_template),
                       "broker_url": redis_server.url})
    w = RemoteWorker(cfg, "gpu-live")
    try:
        # the web process's side: the same database, the lane's cancels through Redis
        web = SimpleNamespace(db=w.s.db, registry=w.s.registry, events=w.s.events, worker=RemoteQueue(w.s))

        def doc(**params):
            return JobDocumentIn.model_validate({"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [],
                                                 "params": {"prompt": "a harbour", "model": "demo", **params}})

        (normal,) = queue.enqueue(w.s.db, split_batch(doc(steps=2), w.s.registry), priority=100)
        slow, _, _, _ = live.enqueue(web, doc(steps=400, scheduler="euler"))
        runner = threading.Thread(target=w.run_next)
        runner.start()
        deadline = time.monotonic() + 60
        while w.current is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.current is not None and w.current.id == slow.id, "the live item is claimed before the normal one"
        newer, canceled, running, _ = live.enqueue(web, doc(steps=4, scheduler="lcm", cfg_scale=1.0))
        assert canceled == [] and running == [slow.id]
        runner.join(60)
        assert not runner.is_alive()
        from db.errors import NotFound

        try:
            assert queue.get_item(w.s.db, slow.id).status == "canceled"
        except NotFound:
            pass  # canceled, then cleaned up with its generation (server/live.py)
        assert w.run_next() == newer.id
        assert queue.get_item(w.s.db, newer.id).status == "completed"
        with w.s.db.read() as s:
            from sqlalchemy import select

            from db.models import Image as ImageRow

            rows = s.scalars(select(ImageRow)).all()
        assert [(r.generation_id, r.category) for r in rows] == [(newer.generation_id, "live")]
        assert w.run_next() == normal.id
        assert [i.id for i in db_images.list_images(w.s.db).items] != [] and all(
            i.category == "general" for i in db_images.list_images(w.s.db).items
        )
    finally:
        w.s.db.dispose()
