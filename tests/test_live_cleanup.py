"""Live painting cleans up after itself (server/live.py, db/live_cleanup.py): a superseded or pruned live job
leaves no generation, queue item or layer asset behind; GET /history lists no live generation unless its
render was kept; an asset something else names (an ordinary job, a saved canvas, a board) stays.

The lane itself (supersede, priority, renders) is tests/test_live.py.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db import history, live_cleanup, queue
from db import images as db_images
from db.assets import AssetStore
from db.models import Generation, QueueItem
from db.queue import NewJob
from db.session import Database
from server import live
from server.app import create_app, shutdown
from test_live import API, png, post_live, sketch, upload_layer, wait_items

# --- helpers ---------------------------------------------------------------------------------------------


def live_document(client, layer_id: str, prompt: str = "a lighthouse") -> dict:
    fast = next(m for m in client.get(f"{API}/models").json if m["id"] == "demo")["live_defaults"]
    return {
        "bbox": {"x": 0, "y": 0, "width": 64, "height": 64},
        "layers": [{"id": "paint", "kind": "raster", "image_id": layer_id}],
        "params": {"prompt": prompt, "model": "demo", "mask_blur": 0, **fast},
    }


def run_live(client, layer_id: str) -> dict:
    job = post_live(client, live_document(client, layer_id))
    [done] = wait_items(client, [job["item_id"]])
    assert done["status"] == "completed", done
    return done


def live_generation_ids(app) -> set[str]:
    s = app.extensions["invoke_canvas"]
    with s.db.read() as session:
        return set(session.scalars(select(QueueItem.generation_id).where(QueueItem.priority == live.LIVE_PRIORITY)))


def asset_gone(app, client, image_id: str, file_name: str, timeout: float = 5) -> bool:
    """The row, then the file (deleted just after the rows commit)."""
    s = app.extensions["invoke_canvas"]
    deadline = time.monotonic() + timeout
    while client.get(f"{API}/images/{image_id}").status_code != 404 or s.store.exists(file_name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("live-cleanup-root")), "device": "cpu"})
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


# --- on the real app ----------------------------------------------------------------------------------------


def test_live_jobs_leave_only_the_retained_and_kept_generations_and_their_layers(app, client):
    shared = upload_layer(client, sketch(100))  # also in an ordinary job
    saved = upload_layer(client, sketch(101))  # also in a saved canvas
    normal = client.post(f"{API}/canvas/jobs", json={"document": {**live_document(client, shared), "params": {
        "prompt": "an ordinary job", "steps": 2, "seed": 5, "model": "demo", "strength": 0.5}}})
    assert normal.status_code == 201, normal.get_data(as_text=True)
    [normal_item] = wait_items(client, normal.json["item_ids"])
    assert normal_item["status"] == "completed"
    canvas = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [{"id": "p", "kind": "raster", "image_id": saved}],
              "params": {"prompt": "saved"}}
    assert client.post(f"{API}/canvas", json={"name": "Saved", "document": canvas}).status_code == 201

    n = live.LIVE_RETAINED + 4
    layers = [shared, saved] + [upload_layer(client, sketch(200 + k)) for k in range(2, n)]
    files = {i: client.get(f"{API}/images/{i}").json["file_name"] for i in layers}
    done, kept, superseded = [], None, None
    for k, layer in enumerate(layers):
        if k == 5:  # a pending live job superseded by the next one: canceled, then cleaned up
            client.post(f"{API}/queue/pause")
            superseded_layer = upload_layer(client, sketch(300))
            files[superseded_layer] = client.get(f"{API}/images/{superseded_layer}").json["file_name"]
            superseded = post_live(client, live_document(client, superseded_layer))
            job = post_live(client, live_document(client, layer))
            assert job["superseded"] == [superseded["item_id"]]
            client.post(f"{API}/queue/resume")
            [item] = wait_items(client, [job["item_id"]])
            done.append(item)
        else:
            done.append(run_live(client, layer))
        if k == 3:  # kept before newer renders push it out: a gallery image, its generation stays
            [render] = client.get(f"{API}/history/{done[3]['generation_id']}").json["image_ids"]
            assert client.post(f"{API}/live/images/{render}/keep", json={}).status_code == 200
            kept = done[3]

    # the generations table: the newest LIVE_RETAINED live generations and the kept one, nothing else of the lane
    retained = {d["generation_id"] for d in done[-live.LIVE_RETAINED:]}
    deadline = time.monotonic() + 20  # the last job's cleanup runs just after its status is committed
    while live_generation_ids(app) != retained | {kept["generation_id"]} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_generation_ids(app) == retained | {kept["generation_id"]}
    for gone in (done[0], done[1], done[2], superseded):
        assert client.get(f"{API}/queue/items/{gone.get('id', gone.get('item_id'))}").status_code == 404
        assert client.get(f"{API}/history/{gone['generation_id']}").status_code == 404
    with app.extensions["invoke_canvas"].db.read() as session:
        statuses = set(session.scalars(select(Generation.status)))
    assert statuses == {"completed"}

    # GET /history: no live generation but the kept one
    listed = {g["id"] for g in client.get(f"{API}/history", query_string={"limit": 500}).json["items"]}
    assert kept["generation_id"] in listed and normal_item["generation_id"] in listed
    assert not listed & retained

    # the layer assets: those only superseded live jobs named are gone (rows and files), the others stay
    for gone in (layers[2], superseded_layer):
        assert asset_gone(app, client, gone, files[gone]), gone
    for stays in (shared, saved, layers[3], *layers[-live.LIVE_RETAINED:]):
        assert client.get(f"{API}/images/{stays}").status_code == 200, stays
        assert app.extensions["invoke_canvas"].store.exists(files[stays])
    # the kept render still recalls the layer it was painted from
    assert client.get(f"{API}/history/{kept['generation_id']}").json["image_ids"]


# --- the database op on SQLite and PostgreSQL ----------------------------------------------------------------


def test_purge_lane_deletes_only_finished_unrendered_generations_and_their_own_assets(tmp_path, db_url):
    db = Database(tmp_path, url=db_url)
    store = AssetStore(tmp_path)
    lane = live.LIVE_PRIORITY
    try:
        def asset(seed: int, **kw) -> db_images.ImageRecord:
            return db_images.add_image(db, store, png(sketch(seed, 16)), category="layer", **kw)

        def job(*assets: db_images.ImageRecord) -> NewJob:
            return NewJob(request={"layers": [{"id": f"l{i}", "image_id": a.id} for i, a in enumerate(assets)], "params": {}})

        from db import boards

        board = boards.create_board(db, "Filed")
        only_1, in_board, only_2, also_normal, newest_layer = asset(1), asset(2, board_id=board.id), asset(3), asset(4), asset(5)
        first, _, _ = queue.enqueue_superseding(db, job(only_1, in_board), lane)
        second, canceled, _ = queue.enqueue_superseding(db, job(only_2, also_normal), lane)
        assert [c.id for c in canceled] == [first.id]
        assert queue.claim_next(db).id == second.id
        queue.finish(db, second.id, "failed", "Boom", "it broke")
        (normal,) = queue.enqueue(db, [job(also_normal)])
        third, _, _ = queue.enqueue_superseding(db, job(newest_layer), lane)

        purged = live_cleanup.purge_lane(db, store, lane)
        assert set(purged.generation_ids) == {first.generation_id, second.generation_id}
        assert set(purged.image_ids) == {only_1.id, only_2.id}
        assert not store.exists(only_1.file_name) and not store.exists(only_2.file_name)
        for stays in (in_board, also_normal, newest_layer):
            assert db_images.get_image(db, stays.id).id == stays.id
        with pytest.raises(Exception):
            queue.get_item(db, first.id)

        # pending, running, or the lane's newest even when canceled: never deleted
        assert live_cleanup.purge_lane(db, store, lane).generation_ids == []
        assert queue.claim_next(db).id == third.id  # the live one first
        assert live_cleanup.purge_lane(db, store, lane).generation_ids == []
        queue.finish(db, third.id, "canceled")
        assert live_cleanup.purge_lane(db, store, lane).generation_ids == []

        # a kept render keeps its generation; a newer live job lets the canceled one go
        fourth, _, _ = queue.enqueue_superseding(db, job(newest_layer), lane)
        queue.claim_next(db)
        render = db_images.add_image(db, store, png(sketch(9, 16)), origin="generated", category="live",
                                     generation_id=fourth.generation_id)
        queue.finish(db, fourth.id, "completed")
        db_images.keep_live(db, render.id)
        fifth, _, _ = queue.enqueue_superseding(db, job(asset(6)), lane)
        purged = live_cleanup.purge_lane(db, store, lane)
        assert purged.generation_ids == [third.generation_id]
        assert purged.image_ids == []  # newest_layer: the kept one's request names it

        listed = [g.id for g in history.list_generations(db, hide_lane=lane).items]
        assert listed == [fourth.generation_id, normal.generation_id]
        everything = {g.id for g in history.list_generations(db).items}
        assert everything == {normal.generation_id, fourth.generation_id, fifth.generation_id}
        # clearing the queue keeps the lane's items: they mark its generations live
        queue.clear_finished(db, keep_priority=lane)
        assert [g.id for g in history.list_generations(db, hide_lane=lane).items] == listed
    finally:
        db.dispose()


def test_only_rows_made_since_an_asset_can_keep_it(tmp_path):
    """The search for other requests naming an asset covers the rows made since its upload (less the
    clocks' skew), not the whole history: what keeps it still keeps it, an older row cannot."""

    from db.models import Image

    db, store = Database(tmp_path), AssetStore(tmp_path)
    lane = live.LIVE_PRIORITY
    try:
        def asset(seed: int) -> db_images.ImageRecord:
            return db_images.add_image(db, store, png(sketch(seed, 16)), category="layer")

        def job(a: db_images.ImageRecord) -> NewJob:
            return NewJob(request={"layers": [{"id": "l", "image_id": a.id}], "params": {}})

        skewed, fresh = asset(1), asset(2)
        (other,) = queue.enqueue(db, [job(skewed)])  # an ordinary job naming `skewed`, made within the skew
        with db.write() as s:  # `skewed`'s row stamped later than the job by a clock half the skew ahead
            s.scalars(select(Image).where(Image.id == skewed.id)).one().created_at += live_cleanup.CLOCK_SKEW / 2
        queue.enqueue_superseding(db, job(skewed), lane)
        queue.enqueue_superseding(db, job(fresh), lane)
        queue.enqueue_superseding(db, job(asset(3)), lane)
        purged = live_cleanup.purge_lane(db, store, lane)
        assert purged.image_ids == [fresh.id]  # `skewed` stays: the ordinary job names it
        assert db_images.get_image(db, skewed.id).id == skewed.id
        # the same job stamped before the asset's upload by more than the skew cannot have named it
        with db.write() as s:
            s.get(Generation, other.generation_id).created_at -= live_cleanup.CLOCK_SKEW * 2
        queue.enqueue_superseding(db, job(skewed), lane)
        queue.enqueue_superseding(db, job(asset(4)), lane)
        assert skewed.id in live_cleanup.purge_lane(db, store, lane).image_ids
    finally:
        db.dispose()


def test_each_clients_newest_keeps_its_layers_until_the_client_is_idle(tmp_path):
    """Two tabs painting live: the purge keeps the newest job of each (its layers, as it last sent them),
    not only the lane's newest; a tab idle for KEY_IDLE (closed) no longer keeps its own."""
    db, store = Database(tmp_path), AssetStore(tmp_path)
    lane = live.LIVE_PRIORITY
    try:
        def live_job(key: str, seed: int):
            layer = db_images.add_image(db, store, png(sketch(seed, 16)), category="layer")
            item, _, _ = queue.enqueue_superseding(db, NewJob(request={"layers": [{"id": "l", "image_id": layer.id}], "params": {}}), lane, key)
            queue.cancel(db, item.id)  # finished without a render
            return item, layer

        a_old, a_old_layer = live_job("tab-a", 1)
        a_new, a_layer = live_job("tab-a", 2)
        b_new, b_layer = live_job("tab-b", 3)  # the lane's newest
        purged = live_cleanup.purge_lane(db, store, lane)
        assert purged.generation_ids == [a_old.generation_id] and purged.image_ids == [a_old_layer.id]
        # tab A goes quiet: an hour and more before B's newest, its newest is no longer kept
        with db.write() as s:
            s.get(Generation, a_new.generation_id).created_at -= live_cleanup.KEY_IDLE * 2
        purged = live_cleanup.purge_lane(db, store, lane)
        assert purged.generation_ids == [a_new.generation_id] and purged.image_ids == [a_layer.id]
        assert db_images.get_image(db, b_layer.id).id == b_layer.id
    finally:
        db.dispose()
