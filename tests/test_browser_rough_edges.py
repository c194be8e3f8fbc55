"""Rough edges an illustrator hit (issue 11), in headless Chromium against the real server (demo models,
CPU): Esc discards a staged result (and still cancels a stroke), unsupported drops are named in a toast,
staging's Save stars the image in the gallery, the layer tooltips' grammar, and a blank canvas is "Saved".
Every test fails on any browser console error (the shared `app` fixture).
"""

from __future__ import annotations

import io

import browser_helpers
import numpy as np
from PIL import Image
from browser_helpers import poll

# the shared pytest fixtures (pytest finds them by name in this module; this module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app

BBOX = {"x": 0, "y": 0, "width": 64, "height": 64}


def upload(server, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    response = server.post("/api/v1/images", files={"file": ("r.png", buffer.getvalue(), "image/png")})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def stage(app, image_ids: list[str]) -> None:
    """Results staged as an invoke leaves them (the record the page keeps), without running a job."""
    items = [{"image_id": i, "url": f"/api/v1/images/{i}/file", "item_id": None, "bbox": BBOX} for i in image_ids]
    app.js(
        "(items) => window.__app.store.apply({put: [{id: 'staging', type: 'staging', items, index: 0, bbox: items[0].bbox}]}, {history: false})",
        items,
    )
    app.tid("staging-discard").wait_for(state="visible")


def staged_ids(app) -> list[str]:
    return [i["image_id"] for i in (app.record("staging") or {}).get("items", [])]


def toast_texts(app) -> list[str]:
    return app.page.locator('[data-testid="toast"]').all_inner_texts()


def test_esc_discards_the_current_staged_result(app, server):
    ids = [upload(server, 1), upload(server, 2)]
    stage(app, ids)
    assert "(Esc)" in app.tid("staging-discard").get_attribute("title")
    app.page.keyboard.press("ArrowRight")  # the second result is the current one
    app.wait("() => window.__app.store.get('staging').index === 1")
    app.page.keyboard.press("Escape")
    app.wait("(id) => window.__app.store.get('staging').items.length === 1", ids[1])
    assert staged_ids(app) == [ids[0]], "Esc discards the current result, as the Discard button does"
    app.page.keyboard.press("Escape")
    app.wait("() => !(window.__app.store.get('staging')?.items || []).length")
    assert app.tid("staging-discard").count() == 0 or not app.tid("staging-discard").is_visible()


def test_esc_during_a_stroke_cancels_the_stroke_and_keeps_the_results(app, server):
    ids = [upload(server, 3)]
    stage(app, ids)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("b")
    assert app.record("tool")["name"] == "brush"
    layer = browser_helpers.selected_layer(app)
    assert app.export_pixels(layer) is None
    page = app.page
    x0, y0 = app.to_client(20, 20)
    x1, y1 = app.to_client(50, 40)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=4)
    page.keyboard.press("Escape")
    page.mouse.up()
    app.settle()
    assert staged_ids(app) == ids, "Esc cancelled the stroke only: the result stays staged"
    assert app.export_pixels(layer) is None, "the cancelled stroke left no pixels"
    assert not app.js("() => window.__app.history.canUndo")


def test_unsupported_drops_are_named_in_a_toast(app, server):
    known = {i["id"] for i in server.get("/api/v1/images", params={"limit": 500}).json()["items"]}
    layers = len(app.layers())
    app.drop_files('[data-testid="canvas-stage"]', [("notes.txt", "text/plain", b"not an image")])
    app.page.locator('[data-testid="toast"]', has_text="notes.txt").wait_for(state="visible")
    (text,) = [t for t in toast_texts(app) if "notes.txt" in t]
    assert "PNG, JPEG or WebP" in text, text
    assert len(app.layers()) == layers

    app.drop_files('[data-testid="gallery-grid"]', [("sketch.bmp", "image/bmp", b"BM not really")])
    app.page.locator('[data-testid="toast"]', has_text="sketch.bmp").wait_for(state="visible")
    (text,) = [t for t in toast_texts(app) if "sketch.bmp" in t]
    assert "PNG, JPEG or WebP" in text, text
    app.settle()
    assert {i["id"] for i in server.get("/api/v1/images", params={"limit": 500}).json()["items"]} == known


def test_staging_save_files_the_image_without_starring_it(app, server):
    board = server.post("/api/v1/boards", json={"name": "Keepers"}).json()
    app.js("() => window.__app.gallery.reload()")
    app.page.locator('[data-testid="board-row"]', has_text="Keepers").click()
    image_id = upload(server, 4)
    stage(app, [image_id])
    app.click("staging-save")
    app.page.locator('[data-testid="staging-save"]', has_text="Saved").wait_for(state="visible")
    poll(lambda: server.get(f"/api/v1/images/{image_id}").json()["board_id"] == board["id"], what="filed in the board")
    assert server.get(f"/api/v1/images/{image_id}").json()["starred"] is False


def test_add_layer_tooltips_use_an_before_a_vowel(app):
    assert app.tid("layer-add-inpaint_mask").get_attribute("title") == "Add an inpaint mask layer"
    assert app.tid("layer-add-raster").get_attribute("title") == "Add a raster layer"


def test_a_new_layer_is_numbered_past_the_default_names(app):
    rasters = [l for l in app.layers() if l["kind"] == "raster"]
    assert [l["name"] for l in rasters] == ["Raster 1"]
    app.click("layer-add-raster")
    app.click("layer-add-raster")
    names = [l["name"] for l in app.layers() if l["kind"] == "raster"]
    assert sorted(names) == ["Raster 1", "Raster 2", "Raster 3"], names


def test_a_blank_untouched_canvas_says_saved(app):
    """A first visit: from the start and past the autosave delay, the untouched canvas says "Saved"."""
    status = app.tid("save-status")
    seen = []
    for _ in range(14):  # 3.5 s, past the autosave delay
        seen.append(status.inner_text())
        app.page.wait_for_timeout(250)
    assert set(seen) == {"Saved"}, seen
    # the first change: in the browser's journal at once ("Saved locally"), then the server creates the
    # canvas in the background ("Saved")
    app.click("layer-add-raster")
    app.wait("() => document.querySelector('[data-testid=save-status]').textContent === 'Saved locally'", timeout=5_000)
    canvas_id = app.js("() => window.__app.current.id")
    app.wait("() => document.querySelector('[data-testid=save-status]').textContent === 'Saved'", timeout=15_000)
    assert app.server.get(f"/api/v1/canvas/{canvas_id}").status_code == 200, "the server has it under the browser's id"


def test_a_parent_board_counts_its_sub_boards_images(app, server):
    parent = server.post("/api/v1/boards", json={"name": "Series"}).json()
    child = server.post("/api/v1/boards", json={"name": "Sketches", "parent_id": parent["id"]}).json()
    image_id = upload(server, 5)
    moved = requests_patch(server, f"/api/v1/images/{image_id}", {"board_id": child["id"]})
    assert moved["board_id"] == child["id"]
    app.js("() => window.__app.gallery.reload()")
    count = app.page.locator('[data-testid="board-row"]', has_text="Series").locator('[data-testid="board-count"]').first
    poll(lambda: count.inner_text() == "0 · 1", what="the parent's count with its sub-board")
    assert "1 image with its sub-boards" in count.get_attribute("title")


def requests_patch(server, path: str, body: dict) -> dict:
    import requests

    response = requests.patch(server.url + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_first_run_hint_until_the_first_stroke(app):
    hint = app.tid("first-run-hint")
    assert hint.is_visible() and "Invoke" in hint.inner_text()
    assert app.tid("first-run-demo").is_visible()  # only demo models here: they paint noise
    app.shot("first-run-hint")
    box = app.page.locator('[data-testid="canvas-stage"]').bounding_box()
    # the hint takes no pointer event: a stroke that starts on it reaches the canvas
    app.page.mouse.move(box["x"] + 40, box["y"] + 40)
    app.page.mouse.down()
    app.page.mouse.move(box["x"] + 120, box["y"] + 60, steps=4)
    app.page.mouse.up()
    assert app.tid("first-run-hint").count() == 0
    app.page.reload()
    app.wait_ready()
    assert app.tid("first-run-hint").count() == 0  # remembered on this browser
