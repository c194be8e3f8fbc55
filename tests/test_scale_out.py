"""Scale-out end to end: a web process under gunicorn and `invoke-canvas worker` processes on real PostgreSQL
and Redis, one shared data folder. Workers are separate processes (as on other machines), killed for real."""

from __future__ import annotations

import re
import time

import pytest
import socketio
from conftest import new_pg_database
from scale_cluster import Cluster

LEASE_S = 3.0


def document(steps: int = 3, size: int = 64, batch_size: int = 1, prompt: str = "a lighthouse at dusk") -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": [],
        "params": {"prompt": prompt, "steps": steps, "model": "demo", "batch_size": batch_size},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_server, pg_template, redis_server):
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    root = tmp_path_factory.mktemp("shared-root")
    (root / "config.json").write_text('{"progress_per_second": 1000}')  # every step's event, for the cancel test
    c = Cluster(root, new_pg_database(pg_server, pg_template), redis_server.url, lease=LEASE_S)
    c.start_web()
    c.start_worker("gpu-a")
    c.start_worker("gpu-b")
    c.wait_workers(["gpu-a", "gpu-b"])
    yield c
    c.stop()


def post_job(c: Cluster, **kw) -> list[int]:
    response = c.web.post("/api/v1/canvas/jobs", json={"document": document(**kw)})
    assert response.status_code == 201, response.text
    return response.json()["item_ids"]


def wait_for(predicate, what: str, c: Cluster, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what}\n{c.logs()}")


def item(c: Cluster, item_id: int) -> dict:
    return c.web.get(f"/api/v1/queue/items/{item_id}").json()


def generated_images(c: Cluster) -> list[dict]:
    return c.web.get("/api/v1/images", params={"origin": "generated", "limit": 500}).json()["items"]


def listen(c: Cluster, web=None) -> tuple[socketio.Client, list[tuple[str, dict]]]:
    client = socketio.Client()
    events: list[tuple[str, dict]] = []
    for name in ("queue_item_status_changed", "generation_progress", "image_added"):
        client.on(name, lambda data, name=name: events.append((name, data)))
    client.connect((web or c.web).url, transports=["websocket"], wait_timeout=10)
    return client, events


def test_two_workers_take_four_jobs_and_workers_events_reach_the_browser(cluster):
    c = cluster
    client, events = listen(c)
    try:
        before = len(generated_images(c))
        ids = post_job(c, steps=12, size=64, batch_size=4)
        items = c.web.wait_items(ids, timeout=300)
        errors = [(i["id"], i["worker"], i["error_type"], i["error_message"]) for i in items if i["status"] != "completed"]
        assert [i["status"] for i in items] == ["completed"] * 4, f"{errors}\n{c.logs()}"
        assert {i["worker"] for i in items} == {"gpu-a", "gpu-b"}  # both took work
        assert all(i["attempts"] == 1 for i in items)
        images = generated_images(c)
        assert len(images) == before + 4
        for image in images[:4]:
            assert c.web.get(image["url"]).status_code == 200  # written to the shared folder, served by the web
        # Published by the worker processes, emitted to this client by the web process through Redis.
        wait_for(lambda: sum(1 for n, d in events if n == "image_added") >= 4, "image_added events", c, 30)
        names = {n for n, _ in events}
        assert {"queue_item_status_changed", "generation_progress", "image_added"} <= names
        finished = {d["item_id"] for n, d in events if n == "queue_item_status_changed" and d["status"] == "completed"}
        assert set(ids) <= finished
    finally:
        client.disconnect()


def test_kill_9_of_a_worker_mid_job_completes_its_item_on_the_other(cluster):
    c = cluster
    before = {i["id"] for i in generated_images(c)}
    (long_id,) = post_job(c, steps=300, size=64)
    running = wait_for(lambda: (lambda it: it if it["status"] == "in_progress" else None)(item(c, long_id)), "claimed", c)
    victim, survivor = running["worker"], ({"gpu-a", "gpu-b"} - {running["worker"]}).pop()
    time.sleep(0.5)  # mid-job
    c.workers[victim].kill()
    done = c.web.wait_items([long_id], timeout=300)[0]
    assert done["status"] == "completed" and done["worker"] == survivor, c.logs()
    attempts = c.web.get(f"/api/v1/queue/items/{long_id}/attempts").json()
    # the queue shows one attempt failed (its worker died) and one succeeded
    assert [(a["worker"], a["status"]) for a in attempts] == [(victim, "failed"), (survivor, "completed")]
    assert attempts[0]["error_type"] == "WorkerLost" and f"worker {victim} stopped responding" in attempts[0]["error_message"]
    new = [i for i in generated_images(c) if i["id"] not in before]
    assert len(new) == 1  # none lost, none doubled
    assert new[0]["generation_id"] == done["generation_id"]
    c.start_worker(victim)  # back for the next tests
    c.wait_workers([victim])


def test_cancel_from_the_web_reaches_a_remote_worker_within_one_step(cluster):
    c = cluster
    client, events = listen(c)
    try:
        (item_id,) = post_job(c, steps=400, size=192)  # steps long enough to count
        wait_for(lambda: any(n == "generation_progress" and d["item_id"] == item_id and d["step"] >= 3 for n, d in events),
                 "progress", c)
        seen = max(d["step"] for n, d in events if n == "generation_progress" and d["item_id"] == item_id)
        response = c.web.post(f"/api/v1/queue/items/{item_id}/cancel")
        assert response.status_code == 200
        done = c.web.wait_items([item_id], timeout=60)[0]
        assert done["status"] == "canceled", done
        stopped = int(re.search(r"step (\d+) of", done["error_message"]).group(1))
        # the step running when the cancel arrived finishes, the next one never starts (one more for event lag)
        assert stopped <= seen + 2, (seen, done["error_message"])
    finally:
        client.disconnect()


def test_pause_holds_work_on_every_worker_and_resume_runs_it(cluster):
    c = cluster
    assert c.web.post("/api/v1/queue/pause").json()["paused"] is True
    try:
        (item_id,) = post_job(c, steps=2)
        time.sleep(2.0)
        assert item(c, item_id)["status"] == "pending"
    finally:
        assert c.web.post("/api/v1/queue/resume").json()["paused"] is False
    assert c.web.wait_items([item_id], timeout=120)[0]["status"] == "completed"


def test_a_web_restart_while_a_worker_runs_an_item_does_not_fail_it(cluster):
    c = cluster
    (item_id,) = post_job(c, steps=200, size=64)
    wait_for(lambda: item(c, item_id)["status"] == "in_progress", "claimed", c)
    c.web.kill()  # the web server dies with the item running on a worker
    time.sleep(LEASE_S)  # past a lease: a restart must still not fail a live worker's item
    c.start_web()
    done = c.web.wait_items([item_id], timeout=300)[0]
    assert done["status"] == "completed", (done, c.logs())
    attempts = c.web.get(f"/api/v1/queue/items/{item_id}/attempts").json()
    assert [a["status"] for a in attempts] == ["completed"]


def test_two_web_processes_both_carry_the_workers_events(cluster):
    c = cluster
    second = c.start_extra_web()
    first_client, first_events = listen(c)
    second_client, second_events = listen(c, second)
    try:
        response = second.post("/api/v1/canvas/jobs", json={"document": document(steps=4)})  # queued through web 2
        assert response.status_code == 201, response.text
        (item_id,) = response.json()["item_ids"]
        assert c.web.wait_items([item_id], timeout=120)[0]["status"] == "completed"  # seen through web 1

        def finished(events):
            return any(n == "queue_item_status_changed" and d["item_id"] == item_id and d["status"] == "completed"
                       for n, d in events) and any(n == "image_added" for n, d in events)

        wait_for(lambda: finished(first_events) and finished(second_events), "events on both web processes", c, 30)
    finally:
        first_client.disconnect()
        second_client.disconnect()
        c.extra_webs.remove(second)
        second.stop()


def test_workers_share_the_registry_from_the_database(cluster):
    c = cluster
    models = c.web.get("/api/v1/models").json()
    assert any(m["id"] == "demo" for m in models)
    workers = c.web.get("/api/v1/queue/workers").json()
    assert {w["name"] for w in workers} >= {"gpu-a", "gpu-b"}
    assert all(w["device"] == "cpu" for w in workers)
    assert any("demo" in w["loaded"] for w in workers)  # the model the jobs ran stays loaded (affinity)


def test_an_inpaint_from_the_canvas_runs_on_a_remote_worker_and_stages(cluster, tmp_path, request):
    """As an illustrator would: paint, mask, Invoke in the browser; a remote worker runs it, the queue panel
    names that worker, the result stages and is accepted as a layer, pixel for pixel the image it saved."""
    import numpy as np
    from browser_helpers import (
        BOX, add_layer, app_session, brush, fill_rect, image_rgba, last_item, launch, poll, queue_ids, set_up_job, wait_staged,
    )
    from playwright import sync_api

    c = cluster
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            session = app_session(browser, c.web, tmp_path, request)
            app = next(session)
            set_up_job(app, "a red barn in a field", steps=40)
            fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")
            add_layer(app, "inpaint_mask")
            brush(app, [(32, 40), (64, 64), (96, 88)], size=24)
            before = {layer["id"] for layer in app.layers()}
            known = queue_ids(c.web)
            app.click("invoke")
            item = last_item(c.web, known)
            running = poll(
                lambda: app.page.eval_on_selector_all(
                    f'[data-testid=queue-item][data-item-id="{item["id"]}"] [data-testid=queue-worker]', "els => els.map(e => e.textContent)"
                ) or None,
                what="the queue panel naming the worker",
            )
            assert running[0] in {"gpu-a", "gpu-b"}
            app.shot("running-on-a-worker")
            done = c.web.wait_items([item["id"]], timeout=300)[0]
            assert done["status"] == "completed" and done["worker"] == running[0], done
            staged = wait_staged(app)
            assert c.web.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()["mode"] == "inpaint"
            app.shot("staged")
            app.click("staging-accept")
            app.wait("(n) => window.__app.store.layers().length === n + 1", len(before))
            (new,) = [layer for layer in app.layers() if layer["id"] not in before]
            assert new["kind"] == "raster"
            x, y, pixels = app.export_pixels(new["id"])
            assert (x, y) == (0, 0)
            assert np.array_equal(pixels, image_rgba(c.web, staged["items"][0]["image_id"])), \
                "the accepted layer holds the pixels the remote worker saved"
            # the canvas itself goes to the shared database like any other save
            app.wait("() => document.querySelector('[data-testid=save-status]').dataset.state === 'saved'", timeout=30_000)
            assert c.web.get("/api/v1/canvas").json(), "the canvas is saved on the server"
            next(session, None)  # the end screenshot, and no console errors
        finally:
            browser.close()
