"""The web front end in headless Chromium against the real server (demo models, CPU).

A person's gestures through the data-testid hooks (clicks, keys, mouse drags on the stage, file drops);
`window.__app` is only read for assertions. Every test fails on any browser console error, saves its
screenshots under its tmp_path and copies them to /tmp/browser-shots/ for humans.
"""

from __future__ import annotations

import re

import browser_helpers
import numpy as np
from browser_helpers import (
    BOX,
    STEPS,
    VIEWPORT,
    App,
    ConsoleWatch,
    add_layer,
    board_row,
    brush,
    create_board,
    fill_rect,
    generation,
    image_rgba,
    last_item,
    layer_row,
    png_bytes,
    poll,
    queue_ids,
    selected_layer,
    set_up_job,
    wait_staged,
    watch_queue,
)
from server_process import ServerProcess

# the shared pytest fixtures (pytest finds them by name in this module; each module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


# ---- (a) inpaint: mask, invoke, progress, staging, accept ----------------------------------------------------------


def test_inpaint_mask_invoke_progress_staging_accept(app, server):
    set_up_job(app, "a red barn in a field")
    raster = selected_layer(app)
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")  # the whole box is painted: inpaint, not outpaint
    painted = app.export(raster)
    assert painted and painted["width"] >= BOX + 32 - 2 and painted["height"] >= BOX + 32 - 2

    mask = add_layer(app, "inpaint_mask")
    brush(app, [(32, 40), (64, 64), (96, 88)], size=24)
    mask_px = app.export_pixels(mask["id"])
    assert mask_px is not None, "the stroke went onto the inpaint mask"
    assert app.export(raster)["url"] == painted["url"], "the raster layer under the mask is untouched"
    app.shot("mask-painted")

    known = queue_ids(app.server)
    watch_queue(app)
    layers_before = app.layers()
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    staged = wait_staged(app)
    seen = app.js("() => window.__seen")
    assert f"{item['id']}:in_progress" in seen["statuses"], f"the queue never showed the item running: {seen}"
    assert any(re.fullmatch(rf"\d+/{STEPS}|\d+/\d+", s) for s in seen["steps"]) or any(
        0 < b < 100 for b in seen["bars"]
    ), f"no progress (step label or bar) shown while running: {seen}"
    row = app.page.locator(f'[data-testid="queue-item"][data-item-id="{item["id"]}"]')
    assert row.get_attribute("data-status") == "completed"
    gen = generation(server, item["generation_id"])
    assert staged["items"][0]["image_id"] in gen["image_ids"]
    meta = server.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()
    assert meta["mode"] == "inpaint", meta
    app.shot("staged")

    app.click("staging-accept")
    app.wait("(n) => window.__app.store.layers().length === n + 1", len(layers_before))
    app.wait("() => !(window.__app.store.get('staging')?.items || []).length")
    new = [l for l in app.layers() if l["id"] not in {x["id"] for x in layers_before}]
    assert len(new) == 1 and new[0]["kind"] == "raster", new
    assert new[0]["id"] in app.layer_rows(), "the accepted result is listed in the Layers panel"
    result = app.export_pixels(new[0]["id"])
    assert result is not None
    x, y, px = result
    assert (x, y, px.shape[1], px.shape[0]) == (0, 0, BOX, BOX), (x, y, px.shape)
    expected = image_rgba(server, staged["items"][0]["image_id"])
    assert np.array_equal(px, expected), "the accepted layer holds the staged result's pixels"
    assert app.tid("staging-accept").count() == 0 or not app.tid("staging-accept").is_visible()


# ---- (b) outpaint: box half outside the painting ----------------------------------------------------------------------


def test_bbox_half_outside_outpaints(app, server):
    set_up_job(app, "a castle on a hill")
    raster = selected_layer(app)
    fill_rect(app, 0, 0, BOX, BOX, color="#5b8c3a")
    assert app.export(raster)["width"] == BOX

    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("c")  # the generation box tool
    assert app.record("tool")["name"] == "bbox"
    app.drag([(BOX / 2, BOX / 2), (BOX / 2 + 20, BOX / 2 + 2), (BOX, BOX / 2)], steps=6)
    b = app.record("bbox")
    assert (b["x"], b["y"], b["width"], b["height"]) == (BOX // 2, 0, BOX, BOX), b
    app.shot("bbox-moved")

    known = queue_ids(server)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("Control+Enter")  # invoke shortcut
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    gen = generation(server, item["generation_id"])
    assert gen["request"]["bbox"] == {"x": BOX // 2, "y": 0, "width": BOX, "height": BOX}
    (image_id,) = gen["image_ids"]
    meta = server.get(f"/api/v1/images/{image_id}/metadata").json()
    assert meta["mode"] == "outpaint", meta
    staged = wait_staged(app)
    assert staged["items"][0]["image_id"] == image_id
    assert staged["items"][0]["bbox"]["x"] == BOX // 2
    app.shot("outpaint-staged")


# ---- (c) regional guidance: the request carries the region and its mask ----------------------------------------------


def test_regional_guidance_layer_reaches_the_request(app, server):
    set_up_job(app, "a quiet harbour")
    region = add_layer(app, "regional_guidance")
    region_prompt = "a red lighthouse"
    prompt_box = app.tid("region-prompt")
    prompt_box.click()
    prompt_box.fill(region_prompt)
    app.tid("region-negative-prompt").fill("fog")
    brush(app, [(24, 24), (64, 70), (100, 40)], size=20)
    app.shot("region-painted")
    layer = app.record(region["id"])
    assert (layer["prompt"], layer["negative_prompt"]) == (region_prompt, "fog")
    x, y, mask = app.export_pixels(region["id"])
    assert mask[..., 3].max() == 255 and (mask[..., 3] == 0).any()

    known = queue_ids(server)
    watch_queue(app)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    gen = generation(server, item["generation_id"])
    regions = [l for l in gen["request"]["layers"] if l["kind"] == "regional_guidance"]
    assert len(regions) == 1, gen["request"]["layers"]
    sent = regions[0]
    assert sent["id"] == region["id"]
    assert sent["region"] == {"prompt": region_prompt, "negative_prompt": "fog", "strength": 0.8}
    assert (sent["x"], sent["y"]) == (x, y)
    asset = image_rgba(server, sent["image_id"])
    assert asset.shape[:2] == mask.shape[:2]
    assert np.array_equal(asset[..., 3], mask[..., 3]), "the uploaded asset's alpha is the painted mask"
    # the stroke passes through (64, 70): covered there; the far corner of the box is not
    assert asset[70 - y, 64 - x, 3] == 255 and (asset[..., 3] > 0).sum() < asset[..., 3].size
    # the engine runs the region: the job completes and its image's metadata records the region, not its pixels
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    app.page.locator(f'[data-testid="queue-item"][data-item-id="{item["id"]}"][data-status="completed"]').wait_for()
    app.shot("region-queued")
    (image_id,) = gen["image_ids"]
    meta = server.get(f"/api/v1/images/{image_id}/metadata").json()
    (used,) = meta["regions"]["items"]
    assert (used["layer_id"], used["prompt"], used["negative_prompt"]) == (region["id"], region_prompt, "fog")
    assert used["use"] == "region" and 0 < used["coverage"] < 1 and len(used["bbox"]) == 4, used


# ---- (d) 50 strokes, 50 undos, 50 redos ---------------------------------------------------------------------------------


def test_fifty_strokes_undo_redo_pixel_identical(app):
    raster = selected_layer(app)
    fill_rect(app, 16, 16, 112, 80, color="#c0392b")
    start = app.export(raster)
    steps_before = app.js("() => window.__app.history.size")
    app.fill("brush-size", 10)
    rng = np.random.default_rng(7)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf"]
    for i in range(50):
        if i % 10 == 0:
            app.tid("brush-color").fill(colors[i // 10])
            app.page.locator('[data-testid="canvas-stage"]').focus()
            app.key("b")
        x0, y0 = rng.uniform(20, 480, 2)
        pts = [
            (x0, y0),
            (x0 + rng.uniform(-60, 60), y0 + rng.uniform(-60, 60)),
            (x0 + rng.uniform(-60, 60), y0 + rng.uniform(-60, 60)),
        ]
        app.drag(pts, steps=3)
    assert app.js("() => window.__app.history.size") == steps_before + 50, "each stroke is one undo step"
    after = app.export(raster)
    assert after["url"] != start["url"]
    stage = app.tid("canvas-stage")
    app.page.mouse.move(5, 5)  # off the stage: no brush ring in the pictures
    app.settle()
    shot_after = stage.screenshot()
    app.shot("after-strokes")

    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("Control+z", 50)
    app.settle()
    undone = app.export(raster)
    assert (undone["x"], undone["y"], undone["width"], undone["height"]) == (
        start["x"],
        start["y"],
        start["width"],
        start["height"],
    )
    assert undone["url"] == start["url"], "after 50 undos the layer is as before the strokes"
    assert app.js("() => window.__app.history.size") == steps_before
    assert not app.tid("undo").is_disabled(), "the rectangle fill is still undoable"
    app.shot("after-undo")

    app.key("Control+Shift+z", 50)
    app.settle()
    redone = app.export(raster)
    assert redone["url"] == after["url"], "after 50 redos the layer is as after the strokes"
    assert app.tid("redo").is_disabled()
    app.page.mouse.move(5, 5)
    app.settle()
    assert stage.screenshot() == shot_after, "the stage looks as it did after the strokes"


# ---- (e) reload: the canvas comes back --------------------------------------------------------------------------------------


def rename_layer(app: App, layer_id: str, name: str) -> None:
    """Double-click the layer's name in the Layers panel, type, Enter."""
    row = app.page.locator(f'[data-testid="layer-row"][data-layer-id="{layer_id}"]')
    row.locator(".layer-name").dblclick()
    box = app.tid("layer-rename")
    box.fill(name)
    box.press("Enter")
    app.wait("([id, name]) => window.__app.store.get(id).name === name", [layer_id, name])


UI_KEYS = ("id", "kind", "name", "z", "opacity", "visible", "locked", "color", "prompt", "negative_prompt", "strength")


def test_reload_restores_canvas(app, server, browser):
    set_up_job(app, "a lantern by the sea", width=192, height=128, steps=4)
    app.fill("cfg", 5.5)
    raster = selected_layer(app)
    fill_rect(app, 8, 8, 120, 100, color="#8e44ad")
    brush(app, [(20, 20), (150, 110)], size=16)
    app.tid("layer-opacity").fill("0.6")  # the selected (raster) layer's opacity slider
    mask = add_layer(app, "inpaint_mask")
    brush(app, [(40, 60), (90, 60)], size=20)
    region = add_layer(app, "regional_guidance")
    app.tid("region-prompt").fill("a small boat")
    brush(app, [(150, 30), (170, 90)], size=14)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("c")
    app.drag([(96, 64), (110, 70), (136, 80)], steps=5)  # move the box by (40, 16) -> snapped to 8
    bbox = app.record("bbox")
    assert (bbox["x"], bbox["y"], bbox["width"], bbox["height"]) == (40, 16, 192, 128), bbox

    # UI state the server's document must now carry: names, lock, colours, an empty layer, the seed
    # toggle (random, remembering a typed seed), the staging area and the selected board
    rename_layer(app, raster, "Sea wall")
    layer_row(app, region["id"]).click()
    app.tid("layer-color").fill("#22aa88")
    app.wait("(id) => window.__app.store.get(id).color === '#22aa88'", region["id"])
    layer_row(app, mask["id"]).locator('[data-testid="layer-lock"]').click()
    app.wait("(id) => window.__app.store.get(id).locked === true", mask["id"])
    app.tid("seed-random").uncheck()
    app.fill("seed", 4242)
    app.tid("seed-random").check()
    app.wait("() => { const s = window.__app.store.get('settings'); return s.random_seed && s.seed === 4242; }")

    # the worker does not support regional guidance yet: hide the region for the invoke
    layer_row(app, region["id"]).locator('[data-testid="layer-visibility"]').click()
    app.wait("(id) => window.__app.store.get(id).visible === false", region["id"])
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    staged = wait_staged(app)
    layer_row(app, region["id"]).locator('[data-testid="layer-visibility"]').click()  # shown again: its tint shows
    app.wait("(id) => window.__app.store.get(id).visible === true", region["id"])
    empty = add_layer(app, "raster")  # no pixels: saved without an image_id
    rename_layer(app, empty["id"], "Empty sketch")
    create_board(app, "Lanterns")  # a new board is the selected one
    board = flat_boards(server)["Lanterns"]["id"]
    app.wait("(id) => window.__app.gallery.selection === id", board)

    layers = app.layers()
    assert [l["name"] for l in layers] == ["Sea wall", "Inpaint mask 1", "Region 1", "Empty sketch"]
    pixels = {l["id"]: app.export(l["id"]) for l in layers}
    settings = app.record("settings")
    assert pixels[raster] and pixels[mask["id"]] and pixels[region["id"]] and pixels[empty["id"]] is None
    assert app.record(raster)["opacity"] == 0.6

    # autosave: the server holds this document, UI state included
    def saved():
        for canvas in server.get("/api/v1/canvas").json():
            doc = server.get(f"/api/v1/canvas/{canvas['id']}").json()["document"]
            if matches(doc):
                return canvas["id"], doc
        return None

    def matches(doc):
        ui = doc.get("ui") or {}
        return (
            doc["bbox"] == {"x": 40, "y": 16, "width": 192, "height": 128}
            and doc["params"]["prompt"] == "a lantern by the sea"
            and doc["params"]["steps"] == 4
            and [l["id"] for l in doc["layers"]] == [l["id"] for l in layers]
            and [l.get("name") for l in doc["layers"]] == [l["name"] for l in layers]
            and any((l.get("region") or {}).get("prompt") == "a small boat" for l in doc["layers"])
            and ui.get("board") == board
            and (ui.get("staging") or {}).get("items") == staged["items"]
        )

    canvas_id, doc = poll(saved, timeout=20, what="the autosave")
    assert {l["id"]: l["kind"] for l in doc["layers"]} == {l["id"]: l["kind"] for l in layers}
    by_id = {l["id"]: l for l in doc["layers"]}
    assert "image_id" not in by_id[empty["id"]] and all(
        by_id[i].get("image_id") for i in (raster, mask["id"], region["id"])
    )
    assert by_id[mask["id"]]["locked"] is True and by_id[region["id"]]["color"] == "#22aa88"
    assert doc["ui"]["random_seed"] is True and doc["ui"]["seed"] == 4242 and "seed" not in doc["params"]
    app.shot("before-reload")

    def check_restored(a: App, label: str) -> None:
        a.wait("(n) => window.__app.store.layers().length === n", len(layers))
        assert [{k: l.get(k) for k in UI_KEYS} for l in a.layers()] == [
            {k: l.get(k) for k in UI_KEYS} for l in layers
        ], label
        back = a.record("bbox")
        assert {k: back[k] for k in ("x", "y", "width", "height")} == {
            k: bbox[k] for k in ("x", "y", "width", "height")
        }
        s = a.record("settings")
        for key in ("prompt", "steps", "cfg_scale", "scheduler", "strength", "random_seed", "seed"):
            assert s[key] == settings[key], (label, key)
        for layer_id, before in pixels.items():
            now = a.export(layer_id)
            if before is None:
                assert now is None, (label, layer_id, "the empty layer stays empty")
                continue
            assert now is not None, (label, layer_id)
            assert (now["x"], now["y"], now["width"], now["height"]) == (
                before["x"],
                before["y"],
                before["width"],
                before["height"],
            )
            assert now["url"] == before["url"], f"{label}: layer {layer_id} pixels changed"
        restaged = a.record("staging")
        assert restaged and restaged["items"] == staged["items"] and restaged["index"] == staged["index"], (
            label,
            restaged,
        )
        a.tid("staging-accept").wait_for(state="visible")
        assert a.js("() => window.__app.gallery.selection") == board, label
        assert board_row(a, "Lanterns").get_attribute("aria-selected") == "true", label
        assert a.tid("prompt").input_value() == "a lantern by the sea"
        assert a.tid("bbox-width").input_value() == "192"
        assert sorted(a.layer_rows()) == sorted(pixels)
        rows = {r: layer_row(a, r) for r in pixels}
        assert rows[raster].locator(".layer-name").inner_text() == "Sea wall"
        assert "on" in rows[mask["id"]].locator('[data-testid="layer-lock"]').get_attribute("class")
        # localStorage holds the open canvas's id and nothing that would make a restore differ
        keys = a.js("() => Object.keys(localStorage)")
        assert not [
            k for k in keys if k.startswith(("invokeCanvas.extras", "invokeCanvas.jobs", "invokeCanvas.board"))
        ], keys
        assert a.js("() => localStorage.getItem('invokeCanvas.current')") == canvas_id

    app.page.reload()
    app.wait_ready()
    check_restored(app, "reload")
    app.shot("after-reload")

    # another browser (a fresh context: empty localStorage and journal) opens the most recently edited
    # canvas, this one, not a new empty one
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        watch = ConsoleWatch(page)
        other = App(page, server, app.out_dir, app.name + "-other")
        other.open()
        assert page.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('invokeCanvas.extras'))") == []
        other.wait("(id) => window.__app.current.id === id", canvas_id)
        check_restored(other, "other browser")
        # the Layers panel's thumbnails redraw on a short debounce: wait for the painted layers' ones
        other.wait(
            """(ids) => ids.every((id) => {
                 const c = document.querySelector(`[data-testid=layer-row][data-layer-id="${id}"] canvas.layer-thumb`);
                 return c && c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v > 0);
               })""",
            [i for i, e in pixels.items() if e is not None],
        )
        other.shot("other-browser")
        assert not watch.errors, "browser console errors:\n" + "\n".join(watch.errors)
    finally:
        context.close()


# ---- (f) boards: create, nest; image: move, star, delete -------------------------------------------------------------------


def image_ids(server: ServerProcess) -> set[str]:
    return {i["id"] for i in server.get("/api/v1/images", params={"limit": 500}).json()["items"]}


def new_image(server: ServerProcess, known: set[str], what: str) -> dict:
    """The one image uploaded since `known` was read (the server keeps no original file name)."""

    def fresh():
        items = [i for i in server.get("/api/v1/images", params={"limit": 500}).json()["items"] if i["id"] not in known]
        assert len(items) <= 1, items
        return items[0] if items else None

    return poll(fresh, timeout=15, what=what)


def flat_boards(server: ServerProcess) -> dict[str, dict]:
    out = {}

    def walk(nodes):
        for n in nodes:
            out[n["board"]["name"]] = n["board"]
            walk(n["children"])

    walk(server.get("/api/v1/boards").json())
    return out


def test_boards_nest_move_star_delete(app, server):
    create_board(app, "Trips")
    create_board(app, "Sketches")
    create_board(app, "Coast", parent="Trips")
    boards = flat_boards(server)
    assert boards["Coast"]["parent_id"] == boards["Trips"]["id"]
    assert boards["Sketches"]["parent_id"] is None

    # nest "Sketches" under "Trips" by dragging its row onto Trips
    board_row(app, "Sketches").drag_to(board_row(app, "Trips"))
    poll(
        lambda: flat_boards(server)["Sketches"]["parent_id"] == boards["Trips"]["id"],
        timeout=10,
        what="Sketches nested in Trips",
    )
    board_row(app, "Sketches").wait_for(state="visible")
    app.shot("boards")

    # an image in "All images" (dropped from the desktop), then moved, starred and deleted from the grid
    app.page.locator('[data-testid="board-row"][data-special="__all__"]').click()
    pic = np.zeros((48, 64, 3), np.uint8)
    pic[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    known = image_ids(server)
    app.drop_files('[data-testid="gallery-grid"]', [("harbour.png", "image/png", png_bytes(pic))])
    image = new_image(server, known, "the dropped image uploaded")
    assert (image["width"], image["height"], image["board_id"]) == (64, 48, None)
    cell = app.page.locator(f'[data-testid="gallery-image"][data-image-id="{image["id"]}"]')
    cell.wait_for(state="visible")

    cell.drag_to(board_row(app, "Sketches"))
    poll(
        lambda: server.get(f"/api/v1/images/{image['id']}").json()["board_id"] == boards["Sketches"]["id"],
        timeout=10,
        what="image moved",
    )
    board_row(app, "Sketches").click()
    cell.wait_for(state="visible")  # the board shows it
    assert "1" in board_row(app, "Sketches").locator(".board-count").inner_text()

    cell.hover()
    cell.locator('[data-testid="gallery-star"]').click()
    poll(lambda: server.get(f"/api/v1/images/{image['id']}").json()["starred"], timeout=10, what="image starred")
    app.page.locator(
        f'[data-testid="gallery-image"][data-image-id="{image["id"]}"] [data-testid="gallery-star"].on'
    ).wait_for()
    app.shot("starred")

    cell.hover()
    cell.locator('[data-testid="gallery-delete"]').click()
    poll(lambda: server.get(f"/api/v1/images/{image['id']}").status_code == 404, timeout=10, what="image deleted")
    cell.wait_for(state="detached")


# ---- (g) drag and drop files from the desktop ----------------------------------------------------------------------------------


def test_drop_files_on_gallery_and_canvas(app, server):
    rng = np.random.default_rng(3)
    gallery_pic = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    app.page.locator('[data-testid="board-row"][data-special="__all__"]').click()
    known = image_ids(server)
    app.drop_files('[data-testid="gallery-grid"]', [("from-desktop.png", "image/png", png_bytes(gallery_pic))])
    uploaded = new_image(server, known, "the file dropped on the gallery uploaded")
    assert (uploaded["width"], uploaded["height"], uploaded["category"]) == (56, 40, "general")
    assert np.array_equal(image_rgba(server, uploaded["id"])[..., :3], gallery_pic)
    app.page.locator(f'[data-testid="gallery-image"][data-image-id="{uploaded["id"]}"]').wait_for(state="visible")

    canvas_pic = np.dstack([rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), np.full((30, 50), 255, np.uint8)])
    before = {l["id"] for l in app.layers()}
    cx, cy = (round(v) for v in app.to_client(200, 150))  # DragEvent client coordinates are whole pixels
    px_x, px_y = app.js(
        """([cx, cy]) => { const r = window.__app.canvas.stage.content.getBoundingClientRect(); const v = window.__app.store.get('view');
           return [(cx - r.left - v.x) / v.scale, (cy - r.top - v.y) / v.scale]; }""",
        [cx, cy],
    )
    app.drop_files(
        '[data-testid="canvas-stage"]', [("dropped-on-canvas.png", "image/png", png_bytes(canvas_pic))], at=(cx, cy)
    )
    app.wait("(n) => window.__app.store.layers().length === n + 1", len(before))
    (layer,) = [l for l in app.layers() if l["id"] not in before]
    assert layer["kind"] == "raster" and layer["name"] == "dropped-on-canvas"
    assert layer["id"] in app.layer_rows()
    x, y, px = app.export_pixels(layer["id"])
    assert (x, y) == (round(px_x - 25), round(px_y - 15)), "centred on the drop point"
    assert np.array_equal(px, canvas_pic), "the layer holds the file's pixels"
    app.shot("dropped")


# ---- (h) a job that finishes before the enqueue reply reaches the page -------------------------------------------------------


def test_result_staged_when_job_finishes_before_enqueue_reply(app, server):
    """Fast jobs (a GPU, a tiny box) or a slow network: the item's terminal event can arrive before the
    POST /canvas/jobs reply. The result must still be staged (and a failure still reported)."""
    set_up_job(app, "a windmill", width=64, height=64, steps=2)
    held = {}

    def hold_reply_until_done(route):
        reply = route.fetch()
        ids = reply.json()["item_ids"]
        held["items"] = server.wait_items(ids, timeout=60)  # the worker finishes first
        route.fulfill(response=reply)
        held["replied"] = True

    app.page.route("**/api/v1/canvas/jobs", hold_reply_until_done)
    app.click("invoke")
    for _ in range(600):  # let Playwright run the route handler (it waits for the job) and deliver the reply
        if held.get("replied"):
            break
        app.page.wait_for_timeout(100)
    assert held.get("replied"), "the page never sent POST /canvas/jobs"
    assert held["items"][0]["status"] == "completed", held
    gen = generation(server, held["items"][0]["generation_id"])
    try:
        staged = wait_staged(app, timeout=5_000)
    except Exception as err:
        app.shot("not-staged")
        raise AssertionError(
            f"item {held['items'][0]['id']} completed (images {gen['image_ids']}) before the enqueue reply; "
            f"the page never staged it (staging: {app.record('staging')})"
        ) from err
    assert staged["items"][0]["image_id"] == gen["image_ids"][0]
