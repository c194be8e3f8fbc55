"""The real server process on a loopback port: live events end to end, and a crash mid-job."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import socketio
from PIL import Image
from server_process import ServerProcess


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(server: ServerProcess, array: np.ndarray, **form) -> dict:
    response = server.post("/api/v1/images", files={"file": ("layer.png", png(array), "image/png")}, data=form)
    assert response.status_code == 201, response.text
    return response.json()


def document(layers, prompt="a lighthouse at dusk", steps=3, size=64, **params) -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": layers,
        "params": {"prompt": prompt, "steps": steps, "seed": 11, "mask_blur": 0, "infill": "telea", **params},
    }


def test_outpaint_job_end_to_end_with_live_events(tmp_path):
    server = ServerProcess(tmp_path)
    client = socketio.Client()
    events: list[tuple[str, dict]] = []
    done = threading.Event()

    def record(name):
        def handler(data):
            events.append((name, data))
            if name == "queue_item_status_changed" and data["status"] in ("completed", "failed", "canceled"):
                done.set()

        return handler

    for name in ("queue_item_status_changed", "generation_progress", "image_added"):
        client.on(name, record(name))
    try:
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        assert client.transport() == "websocket"
        board = server.post("/api/v1/boards", json={"name": "Harbour"}).json()
        layer = np.random.default_rng(3).integers(0, 256, (64, 40, 4), dtype=np.uint8)
        layer[..., 3] = 255  # opaque 40 px on the left: the rest of the 64 px bbox is outpainted
        asset = upload(server, layer, category="layer")
        job = server.post(
            "/api/v1/canvas/jobs",
            json={"document": document([{"id": "base", "kind": "raster", "image_id": asset["id"]}], steps=4), "board_id": board["id"]},
        )
        assert job.status_code == 201, job.text
        [item_id] = job.json()["item_ids"]
        assert done.wait(120), server.log_text()[-3000:]
        time.sleep(0.3)  # image_added was emitted before the final status; let the client drain
    finally:
        client.disconnect()
        server.stop()

    statuses = [d["status"] for n, d in events if n == "queue_item_status_changed" and d["item_id"] == item_id]
    assert statuses[0] in ("pending", "in_progress") and statuses[-1] == "completed" and "in_progress" in statuses
    progress = [d for n, d in events if n == "generation_progress" and d["item_id"] == item_id]
    assert progress and progress[-1]["step"] == progress[-1]["total"] == 3  # 4 steps x strength 0.75
    assert progress[-1]["preview"].startswith("data:image/jpeg;base64,")
    [added] = [d["image"] for n, d in events if n == "image_added" and d["image"]["origin"] == "generated"]

    server = ServerProcess(tmp_path)  # everything is still there after a restart
    try:
        listed = server.get("/api/v1/images", params={"board_id": board["id"]}).json()["items"]
        assert [i["id"] for i in listed] == [added["id"]]
        result = np.asarray(Image.open(io.BytesIO(server.get(added["url"]).content)).convert("RGB"))
        assert np.array_equal(result[:, :40], layer[..., :3])  # the painted part is untouched
        meta = server.get(f"/api/v1/images/{added['id']}/metadata").json()
        assert meta["mode"] == "outpaint" and meta["seed"] == 11 and meta["queue_item_id"] == item_id
        history = server.get(f"/api/v1/images/{added['id']}/history").json()
        assert history["generation"]["status"] == "completed" and history["generation"]["image_ids"] == [added["id"]]
        assert server.get("/api/v1/queue/items/%d" % item_id).json()["status"] == "completed"
    finally:
        server.stop()


def test_sigkill_during_a_job_loses_nothing(tmp_path):
    server = ServerProcess(tmp_path)
    long_job = server.post("/api/v1/canvas/jobs", json={"document": document([], steps=200, size=64)}).json()
    pending = server.post("/api/v1/canvas/jobs", json={"document": document([], batch_size=2)}).json()
    server.wait_items(long_job["item_ids"], statuses=("in_progress",), timeout=60)
    server.kill()

    server = ServerProcess(tmp_path)
    try:
        [interrupted] = server.wait_items(long_job["item_ids"], statuses=("failed",), timeout=10)
        assert "interrupted" in interrupted["error_message"]
        finished = server.wait_items(pending["item_ids"], timeout=300)
        assert [i["status"] for i in finished] == ["completed", "completed"]
        retried = server.post("/api/v1/queue/retry", json={"ids": long_job["item_ids"]}).json()
        assert retried[0]["status"] == "pending"
        [done] = server.wait_items(long_job["item_ids"], timeout=600)  # generous: a loaded CI machine
        assert done["status"] == "completed"
        images = server.get("/api/v1/images", params={"origin": "generated"}).json()["items"]
        assert len(images) == 3  # one per completed item, none lost, none doubled
        for image in images:
            assert server.get(image["url"]).status_code == 200
    finally:
        server.stop()


def test_the_console_at_start_says_what_a_newcomer_needs_and_nothing_for_developers(tmp_path):
    server = ServerProcess(tmp_path)
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert f"Invoke Canvas on {server.url}" in log
    assert f"data folder: {tmp_path}" in log
    assert "only the built-in demos (random weights" in log and "invoke-canvas models install" in log
    for noise in ("alembic", "Werkzeug appears", "Serving Flask app", "Debug mode"):
        assert noise not in log, (noise, log)
