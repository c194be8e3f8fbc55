"""Hardening (issue 10): model installs that cannot hang, leak or touch the database's files; dates
and board chains that used to answer 500; a board deleted while its job ran; start-up adoption of
files left without rows by a kill -9.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from db import boards, images
from db.assets import AssetStore
from db.models import Board, Image, new_id
from db.session import DB_FILE, Database
from invoke_core.errors import ModelInstallError
from invoke_core.metadata import png_bytes
from invoke_core.model_install import install_model
from invoke_core.model_probe import probe_model
from invoke_core.model_records import ModelRegistry, hash_path
from server.app import create_app, shutdown

API = "/api/v1"
FINISHED = ("completed", "failed", "canceled")


# --- helpers ---------------------------------------------------------------------------------------


def fake_pipeline_folder(folder: Path, index_text: str | None = None) -> Path:
    """A folder that probes as an SD1 pipeline without weights (enough for probe and hash)."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(index_text or '{"_class_name": "StableDiffusionPipeline", "text_encoder": ["transformers", "CLIPTextModel"]}')
    (folder / "unet" / "config.json").write_text('{"in_channels": 4, "cross_attention_dim": 768}')
    return folder


def in_thread(fn, timeout: float = 15.0):
    """Run `fn` on a daemon thread: (finished, result or exception). A hang does not hang the test."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box.get("error", box.get("result"))


def unblock_fifo(path: Path) -> None:
    """Let a reader stuck opening `path` go (opening the other end, then closing it: EOF)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))


def wait_job(client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while (state := client.get(f"{API}/models/install/{job_id}").json)["status"] == "started":
        assert time.monotonic() < deadline, f"install job stuck: {state}"
        time.sleep(0.05)
    return state


def wait_items(client, ids, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = [client.get(f"{API}/queue/items/{i}").json for i in ids]
        if all(item["status"] in FINISHED for item in items):
            return items
        assert time.monotonic() < deadline, f"items not finished: {items}"
        time.sleep(0.05)


def noise_png(seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    return png_bytes(arr, {"prompt": "left behind by a kill -9", "seed": seed})


@pytest.fixture
def app(tmp_path):
    app = create_app({"root": str(tmp_path / "root"), "device": "cpu", "start_worker": False})
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


def protected_paths(root):
    from db.session import protected_paths as paths

    return paths(root)


def root_of(app) -> Path:
    return Path(app.extensions["invoke_canvas"].config.root)


def assert_database_usable(client) -> None:
    made = client.post(f"{API}/boards", json={"name": "still fine"})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert client.get(f"{API}/boards/{made.json['id']}").status_code == 200
    assert client.delete(f"{API}/boards/{made.json['id']}").status_code == 200
    assert client.get(f"{API}/health").json["status"] == "ok"


# --- 1. installs that cannot hang or escape ---------------------------------------------------------


def test_model_index_nested_100k_deep_is_a_clear_install_error(tmp_path):
    folder = fake_pipeline_folder(tmp_path / "deep", '{"_class_name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelInstallError, match="model_index.json") as caught:
        install_model(ModelRegistry(tmp_path / "reg"), str(folder))
    assert "nested" in str(caught.value)


def test_install_job_fails_on_a_deeply_nested_config(client, tmp_path):
    folder = fake_pipeline_folder(tmp_path / "deep", '{"_class_name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    started = client.post(f"{API}/models/install", json={"source": str(folder)})
    assert started.status_code == 202
    state = wait_job(client, started.json["job_id"])
    assert state["status"] == "failed" and "model_index.json" in state["message"]


def test_install_job_fails_on_any_unexpected_error(client, tmp_path, monkeypatch, caplog):
    import server.routes.models as routes

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(routes, "install_model", boom)
    folder = fake_pipeline_folder(tmp_path / "m")
    with caplog.at_level(logging.ERROR):
        started = client.post(f"{API}/models/install", json={"source": str(folder)})
        state = wait_job(client, started.json["job_id"])
    assert state["status"] == "failed" and "disk on fire" in state["message"]
    assert any(r.levelno >= logging.ERROR and "failed unexpectedly" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("how", ["direct", "symlink", "in-folder"])
def test_install_refuses_a_fifo_without_opening_it(tmp_path, how):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    if how == "direct":
        source = fifo
    elif how == "symlink":
        source = tmp_path / "link.safetensors"
        source.symlink_to(fifo)
    else:
        source = fake_pipeline_folder(tmp_path / "m")
        (source / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(fifo)
    try:
        finished, outcome = in_thread(lambda: install_model(ModelRegistry(tmp_path / "reg"), str(source)))
    finally:
        unblock_fifo(fifo)
    assert finished, "install_model blocked on a FIFO"
    assert isinstance(outcome, ModelInstallError), outcome
    assert "not a regular file" in str(outcome)


def test_probe_and_hash_refuse_a_fifo(tmp_path):
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    try:
        for fn in (probe_model, hash_path):
            finished, outcome = in_thread(lambda fn=fn: fn(fifo))
            assert finished, f"{fn.__name__} blocked on a FIFO"
            assert isinstance(outcome, ModelInstallError) and "not a regular file" in str(outcome), outcome
    finally:
        unblock_fifo(fifo)


def test_install_of_a_fifo_through_the_api_is_a_422(client, tmp_path):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    try:
        response = client.post(f"{API}/models/install", json={"source": str(fifo)})
    finally:
        unblock_fifo(fifo)
    assert response.status_code == 422 and "not a regular file" in response.json["message"], response.json


# --- 2. installs never read the database's files ----------------------------------------------------


def test_protected_paths_come_from_db_definitions(tmp_path):
    paths = protected_paths(tmp_path)
    names = {p.name for p in paths}
    assert {DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal"} <= names
    store = AssetStore(tmp_path)
    assert store.images_dir in paths and store.thumbnails_dir in paths
    assert all(p.parent == tmp_path for p in paths)


def test_install_model_refuses_forbidden_paths_before_opening_them(tmp_path):
    """The forbidden file is a FIFO: were it opened, the install would block; it must be refused first."""
    trap = tmp_path / "data" / "trap.db"
    trap.parent.mkdir()
    os.mkfifo(trap)
    link = tmp_path / "link.safetensors"
    link.symlink_to(trap)
    folder = fake_pipeline_folder(tmp_path / "m")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(trap)
    try:
        for source in (trap, link, trap.parent, folder, tmp_path):
            finished, outcome = in_thread(lambda s=source: install_model(ModelRegistry(tmp_path / "reg"), str(s), forbidden=[trap]))
            assert finished, f"install of {source} opened the forbidden file"
            assert isinstance(outcome, ModelInstallError) and "data" in str(outcome), (source, outcome)
    finally:
        unblock_fifo(trap)


def test_install_model_refuses_a_hard_link_to_a_forbidden_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db_file = data / DB_FILE
    db_file.write_bytes(b"SQLite format 3\x00")
    hard = tmp_path / "copy.safetensors"
    os.link(db_file, hard)
    with pytest.raises(ModelInstallError, match="data"):
        install_model(ModelRegistry(tmp_path / "reg"), str(hard), forbidden=protected_paths(data))


def test_installs_inside_the_data_root_are_422_and_the_database_stays_usable(app, client, tmp_path):
    root = root_of(app)
    upload = client.post(f"{API}/images", data={"file": (io.BytesIO(noise_png()), "a.png")}, content_type="multipart/form-data")
    assert upload.status_code == 201
    image_file = next((root / "images").iterdir())
    (root / f"{DB_FILE}-journal").write_bytes(b"")  # may or may not exist: refused either way
    link = tmp_path / "innocent.safetensors"
    link.symlink_to(root / DB_FILE)
    folder_link = tmp_path / "innocent-folder"
    folder_link.symlink_to(root / "thumbnails")
    sources = [
        root / DB_FILE,
        root / f"{DB_FILE}-wal",
        root / f"{DB_FILE}-shm",
        root / f"{DB_FILE}-journal",
        image_file,
        root / "images",
        root / "thumbnails",
        root,
        root.parent,
        link,
        folder_link,
        Path(str(root / "images") + "/../" + DB_FILE),
    ]
    for source in sources:
        response = client.post(f"{API}/models/install", json={"source": str(source)})
        assert response.status_code == 422, (source, response.get_data(as_text=True))
        assert "data folder" in response.json["message"], response.json
        assert_database_usable(client)
    assert client.get(f"{API}/images").json["items"][0]["id"] == upload.json["id"]


def test_a_folder_holding_a_link_to_the_database_fails_its_job(app, client, tmp_path):
    root = root_of(app)
    folder = fake_pipeline_folder(tmp_path / "m")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(root / DB_FILE)
    started = client.post(f"{API}/models/install", json={"source": str(folder)})
    assert started.status_code == 202
    state = wait_job(client, started.json["job_id"])
    assert state["status"] == "failed" and "data folder" in state["message"], state
    assert_database_usable(client)


def test_models_folder_of_the_data_root_is_not_forbidden(tmp_path):
    root = tmp_path / "root"
    Database(root).dispose()
    from invoke_core.demo import build_sd15_demo

    folder = build_sd15_demo(root / "models" / "hub" / "someone--tiny")
    record = install_model(ModelRegistry(root), str(folder), forbidden=protected_paths(root))
    assert record.family == "sd-1"


# --- 3. dates and deep board chains -----------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field",
    [("created_to=9999-12-31T23:59:59-14:00", "created_to"), ("created_from=0001-01-01T00:00:00%2B14:00", "created_from")],
)
def test_dates_beyond_the_calendar_in_utc_are_422(client, query, field):
    response = client.get(f"{API}/images?{query}")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert field in response.json["message"]


def test_image_dates_overflow_in_db_is_invalid_input(tmp_path):
    from datetime import datetime, timedelta, timezone

    from db.errors import InvalidInput

    db = Database(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="created_to"):
            images.list_images(db, created_to=datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))))
    finally:
        db.dispose()


def make_chain(db: Database, depth: int) -> list[str]:
    """A chain of `depth` nested boards written straight into the table (as an older database may hold)."""
    ids = [new_id() for _ in range(depth)]
    with db.write() as s:
        for i, board_id in enumerate(ids):
            s.add(Board(id=board_id, name=f"level {i}", parent_id=ids[i - 1] if i else None, position=0, archived=False))
            if i % 200 == 0:
                s.flush()
    return ids


def test_a_chain_of_1100_boards_never_answers_500(app, client):
    services = app.extensions["invoke_canvas"]
    ids = make_chain(services.db, 1100)
    image = client.post(f"{API}/images", data={"file": (io.BytesIO(noise_png(1)), "a.png"), "board_id": ids[-1]}, content_type="multipart/form-data")
    assert image.status_code == 201, image.get_data(as_text=True)

    for board_id in (ids[0], ids[-1]):
        response = client.get(f"{API}/boards/{board_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
    tree = client.get(f"{API}/boards")
    assert tree.status_code == 200, tree.get_data(as_text=True)[:500]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # Python's own json decoder recurses (a browser's JSON.parse does not)
    try:
        forest = json.loads(tree.get_data(as_text=True))
    finally:
        sys.setrecursionlimit(limit)
    node, depth = forest[0], 1
    while node["children"]:
        node, depth = node["children"][0], depth + 1
    assert depth == 1100 and node["board"]["id"] == ids[-1] and node["board"]["image_count"] == 1

    listed = client.get(f"{API}/images?board_id={ids[0]}&include_sub_boards=true")
    assert listed.status_code == 200 and [i["id"] for i in listed.json["items"]] == [image.json["id"]]
    assert boards.board_with_descendants(services.db, ids[0]) == ids
    cycle = client.patch(f"{API}/boards/{ids[0]}", json={"parent_id": ids[-1]})
    assert cycle.status_code == 409, cycle.get_data(as_text=True)
    assert client.get(f"{API}/boards/{ids[0]}").json["parent_id"] is None

    deleted = client.delete(f"{API}/boards/{ids[0]}")
    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    assert len(deleted.json["board_ids"]) == 1100 and deleted.json["images_uncategorised"] == 1
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Board)) == 0
    assert client.get(f"{API}/images/{image.json['id']}").json["board_id"] is None


def test_deleting_a_deep_chain_with_its_images(app, client):
    services = app.extensions["invoke_canvas"]
    ids = make_chain(services.db, 1100)
    image = client.post(f"{API}/images", data={"file": (io.BytesIO(noise_png(2)), "a.png"), "board_id": ids[700]}, content_type="multipart/form-data")
    deleted = client.delete(f"{API}/boards/{ids[0]}?include_images=true")
    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    assert deleted.json["images_deleted"] == 1
    assert client.get(f"{API}/images/{image.json['id']}").status_code == 404


def test_nesting_is_capped_for_new_boards_and_moves(tmp_path):
    from db.errors import InvalidInput

    db = Database(tmp_path)
    try:
        parent = None
        for _ in range(boards.MAX_DEPTH):
            parent = boards.create_board(db, "level", parent).id
        with pytest.raises(InvalidInput, match=str(boards.MAX_DEPTH)):
            boards.create_board(db, "one too deep", parent)
        pair = boards.create_board(db, "pair")
        boards.create_board(db, "pair child", pair.id)
        with pytest.raises(InvalidInput, match=str(boards.MAX_DEPTH)):
            boards.move_board(db, pair.id, parent)
        # An over-deep chain from an older database can still be made shallower.
        ids = make_chain(db, boards.MAX_DEPTH + 20)
        assert boards.move_board(db, ids[50], None).parent_id is None
        assert boards.move_board(db, ids[60], ids[55]).parent_id == ids[55]
    finally:
        db.dispose()


def test_create_too_deep_board_through_the_api_is_422(app, client):
    services = app.extensions["invoke_canvas"]
    ids = make_chain(services.db, boards.MAX_DEPTH)
    response = client.post(f"{API}/boards", json={"name": "deeper", "parent_id": ids[-1]})
    assert response.status_code == 422 and str(boards.MAX_DEPTH) in response.json["message"]


# --- 4. a board deleted while its job ran -----------------------------------------------------------


def test_image_of_a_job_whose_board_was_deleted_goes_to_uncategorised(tmp_path, caplog):
    app = create_app({"root": str(tmp_path / "root"), "device": "cpu"})
    try:
        client = app.test_client()
        services = app.extensions["invoke_canvas"]
        worker = services.worker
        assert worker.engine_ready.wait(120) and worker.engine is not None, worker.engine_error
        board_id = client.post(f"{API}/boards", json={"name": "doomed"}).json["id"]
        real_run = worker.engine.run

        def run_then_delete_board(*args, **kwargs):
            results = real_run(*args, **kwargs)
            boards.delete_board(services.db, services.store, board_id, include_images=False)
            return results

        worker.engine.run = run_then_delete_board
        doc = {
            "bbox": {"x": 0, "y": 0, "width": 64, "height": 64},
            "layers": [],
            "params": {"prompt": "p", "steps": 2, "seed": 1, "model": "demo"},
        }
        with caplog.at_level(logging.WARNING):
            made = client.post(f"{API}/canvas/jobs", json={"document": doc, "board_id": board_id})
            assert made.status_code == 201, made.get_data(as_text=True)
            [item] = wait_items(client, made.json["item_ids"])
        assert item["status"] == "completed", item
        listed = client.get(f"{API}/images?board_id=none").json["items"]
        assert len(listed) == 1 and listed[0]["board_id"] is None and listed[0]["origin"] == "generated"
        assert any("Uncategorised" in r.getMessage() and board_id in r.getMessage() for r in caplog.records)
    finally:
        shutdown(app)


def test_add_image_can_fall_back_to_uncategorised(tmp_path):
    from db.errors import NotFound

    db = Database(tmp_path)
    store = AssetStore(tmp_path)
    try:
        with pytest.raises(NotFound):
            images.add_image(db, store, noise_png(), board_id=new_id())
        record = images.add_image(db, store, noise_png(), board_id=new_id(), missing_board="uncategorised")
        assert record.board_id is None
    finally:
        db.dispose()


# --- 5. start-up adoption ---------------------------------------------------------------------------


def test_start_up_adopts_files_without_rows_and_removes_temp_files(tmp_path):
    root = tmp_path / "root"
    first = create_app({"root": str(root), "device": "cpu", "start_worker": False})
    kept_id = first.test_client().post(
        f"{API}/images", data={"file": (io.BytesIO(noise_png(5)), "a.png")}, content_type="multipart/form-data"
    ).json["id"]
    shutdown(first)
    # What a kill -9 between writing the file and committing its row leaves behind:
    orphan_id = new_id()
    (root / "images" / f"{orphan_id}.png").write_bytes(noise_png(6))
    temp = root / "images" / ".tmp-interrupted-upload"
    temp.write_bytes(b"half an image")
    thumb_temp = root / "thumbnails" / ".tmp-interrupted-thumb"
    thumb_temp.write_bytes(b"half a thumbnail")
    # A row whose file is gone: left for the doctor to report, never deleted at start.
    with Database(root).write() as s:
        lost_id = new_id()
        s.add(Image(id=lost_id, file_name=f"{lost_id}.png", width=8, height=8, file_size=10, content_hash="h" * 64))
    # A file that does not decode: left alone (the doctor reports it), not deleted at start.
    junk = root / "images" / f"{new_id()}.png"
    junk.write_bytes(b"not an image")

    app = create_app({"root": str(root), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        ids = {i["id"] for i in client.get(f"{API}/images?limit=500").json["items"]}
        assert {kept_id, orphan_id, lost_id} <= ids
        assert not temp.exists() and not thumb_temp.exists()
        assert junk.exists()
        assert client.get(f"{API}/images/{orphan_id}/thumbnail").status_code == 200
        meta = client.get(f"{API}/images/{orphan_id}").json
        assert meta["origin"] == "uploaded"
    finally:
        shutdown(app)


def test_adopt_orphans_at_db_level(tmp_path):
    from db import doctor

    db = Database(tmp_path)
    store = AssetStore(tmp_path)
    try:
        orphan_id = new_id()
        (store.images_dir / f"{orphan_id}.png").write_bytes(noise_png(7))
        (store.images_dir / ".tmp-x").write_bytes(b"x")
        junk = store.images_dir / f"{new_id()}.png"
        junk.write_bytes(b"junk")
        lost = new_id()
        with db.write() as s:
            s.add(Image(id=lost, file_name=f"{lost}.png", width=8, height=8, file_size=10, content_hash="h" * 64))
        result = doctor.adopt_orphans(db, store)
        assert result.files_imported == (orphan_id,) and result.temp_files_removed == 1 and result.rows_deleted == 0
        assert result.files_removed == () and junk.exists()
        assert images.get_image(db, orphan_id).origin == "uploaded"
        assert images.get_image(db, lost).id == lost
        assert doctor.adopt_orphans(db, store).files_imported == ()  # idempotent
    finally:
        db.dispose()
