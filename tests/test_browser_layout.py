"""The studio layout, in headless Chromium against the real server (issue 11, part 3): settings on the left,
then the tool strip, the canvas, layers and gallery on the right, as InvokeAI users expect. Columns collapse
and resize (drag handles), and both survive a reload; the mode badge over the canvas says what Invoke will
do with the box; the Invoke button shows the running item's progress and how many items are queued.
Every test fails on any browser console error (the shared `app_session`); waits are on DOM conditions.
"""

from __future__ import annotations

import io

import browser_helpers
import numpy as np
import pytest
from browser_helpers import BOX, add_layer, brush, fill_rect, last_item, queue_ids, selected_layer, set_up_job
from PIL import Image

server, browser = browser_helpers.server, browser_helpers.browser

WIDE = {"width": 1440, "height": 900}


@pytest.fixture
def app(browser, server, tmp_path, request):
    """The app in a fresh browser context (empty localStorage) at 1440x900."""
    yield from browser_helpers.app_session(browser, server, tmp_path, request, viewport=WIDE)


def rect(app, selector: str) -> dict:
    box = app.page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


def stage_width(app) -> float:
    return rect(app, '[data-testid="canvas-stage"]')["width"]


def mode(app) -> str:
    return app.tid("mode-badge").get_attribute("data-mode")


def wait_mode(app, expected: str) -> None:
    try:
        app.wait("(m) => document.querySelector('[data-testid=mode-badge]')?.dataset.mode === m", expected, timeout=10_000)
    except Exception as err:
        state = app.js(
            "() => ({mode: document.querySelector('[data-testid=mode-badge]')?.dataset.mode,"
            " title: document.querySelector('[data-testid=mode-badge]')?.title, bbox: window.__app.store.get('bbox'),"
            " layers: window.__app.store.layers().map((l) => [l.kind, l.visible, l.opacity, l.x, l.y])})"
        )
        raise AssertionError(f"the mode badge did not turn {expected}: {state}") from err


# ---- columns ---------------------------------------------------------------------------------------------------


def test_settings_left_canvas_middle_layers_and_gallery_right(app):
    stage = rect(app, '[data-testid="canvas-stage"]')
    assert stage["width"] >= 850, f"the canvas is only {stage['width']} px wide at 1440x900"
    generate = rect(app, '[data-testid="panel-generate"]')
    queue = rect(app, '[data-testid="panel-queue"]')
    tools = rect(app, "#toolbar")
    layers = rect(app, '[data-testid="panel-layers"]')
    gallery = rect(app, '[data-testid="panel-gallery"]')
    assert generate["x"] + generate["width"] <= tools["x"] + 1, "settings are left of the tool strip"
    assert tools["x"] + tools["width"] <= stage["x"] + 1, "the tool strip is left of the canvas"
    assert queue["y"] >= generate["y"] + generate["height"] - 1 and queue["x"] < stage["x"], "the queue sits under Generate"
    assert rect(app, '[data-testid="invoke"]')["x"] < stage["x"], "the Invoke button is in the left column"
    for name, box in (("layers", layers), ("gallery", gallery)):
        assert box["x"] >= stage["x"] + stage["width"] - 1, f"{name} is right of the canvas"
    assert gallery["y"] >= layers["y"] + layers["height"] - 1, "the gallery is under the layers"
    # the mode badge sits over the top of the canvas
    badge = rect(app, '[data-testid="mode-badge"]')
    assert stage["x"] < badge["x"] and badge["x"] + badge["width"] < stage["x"] + stage["width"]
    assert stage["y"] <= badge["y"] < stage["y"] + 60


def test_regional_guidance_settings_and_gallery_rows_fit_without_scrolling(app, server):
    # a few images for the gallery (uploaded as a person would drop them; the grid is re-read)
    for shade in (40, 90, 140, 190, 230, 250, 20):
        buffer = io.BytesIO()
        Image.fromarray(np.full((64, 64, 3), shade, dtype=np.uint8)).save(buffer, format="PNG")
        response = server.post("/api/v1/images", files={"file": (f"g{shade}.png", buffer.getvalue(), "image/png")})
        assert response.status_code in (200, 201), response.text
    app.js("() => window.__app.gallery.reload()")
    app.wait("() => document.querySelectorAll('.grid-cell').length >= 7")

    for kind in ("raster", "raster", "raster", "control", "inpaint_mask", "raster", "regional_guidance"):
        add_layer(app, kind)  # eight layers with the canvas's own
    props = app.tid("layer-props")
    for testid in ("region-prompt", "region-strength", "region-negative-prompt"):
        el = props.locator(f'[data-testid="{testid}"]')
        el.wait_for(state="visible")
        box = el.bounding_box()
        panel = rect(app, '[data-testid="layer-props"]')
        assert panel["y"] <= box["y"] and box["y"] + box["height"] <= panel["y"] + panel["height"] + 0.5, (
            f"{testid} is not in view inside the layer settings: {box} vs {panel}"
        )
        assert box["y"] + box["height"] <= WIDE["height"], f"{testid} is below the window"
    scroll = app.js("() => { const p = document.querySelector('[data-testid=layer-props]'); return [p.scrollHeight, p.clientHeight]; }")
    assert scroll[0] <= scroll[1] + 1, f"the layer settings scroll inside: {scroll}"
    # the layer list shows several rows at once, and has room for more before it scrolls
    row_h = rect(app, '[data-testid="layer-row"]')["height"]
    shown = rect(app, '[data-testid="layer-list"]')["height"]
    assert shown >= 4.5 * row_h, f"the layer list shows only {shown / row_h:.1f} rows"
    room = app.js("() => parseFloat(getComputedStyle(document.querySelector('[data-testid=layer-list]')).maxHeight)")
    assert room >= 8 * row_h, f"the layer list has room for only {room / row_h:.1f} rows"
    # the gallery shows more than a row and a half of thumbnails
    cell = rect(app, ".grid-cell")
    grid = rect(app, '[data-testid="gallery-grid"]')
    assert grid["height"] > 1.5 * cell["height"], f"gallery grid {grid['height']} px for cells of {cell['height']} px"
    assert grid["y"] + grid["height"] <= WIDE["height"] + 0.5


def test_collapsing_a_column_widens_the_canvas_and_survives_a_reload(app):
    before = stage_width(app)
    app.click("toggle-right")
    app.wait("(w) => document.querySelector('[data-testid=canvas-stage]').getBoundingClientRect().width > w + 200", before)
    assert not app.tid("panel-layers").is_visible() and not app.tid("panel-gallery").is_visible()
    assert app.tid("toggle-right").get_attribute("aria-pressed") == "false"
    collapsed = stage_width(app)
    # a panel of the other column collapses to its header, remembered too
    app.click("collapse-queue")
    app.wait("() => document.getElementById('panel-queue').classList.contains('collapsed')")

    app.page.reload()
    app.wait_ready()
    assert not app.tid("panel-layers").is_visible(), "the right column stays collapsed after a reload"
    assert abs(stage_width(app) - collapsed) <= 1
    assert app.js("() => document.getElementById('panel-queue').classList.contains('collapsed')")
    assert app.js("() => localStorage.getItem('invokeCanvas.layout.collapsed.right')") == "1"

    app.click("toggle-right")
    app.tid("panel-layers").wait_for(state="visible")
    assert abs(stage_width(app) - before) <= 1, "shown again, the column takes its width back"
    app.click("collapse-queue")


def test_dragging_a_column_edge_resizes_it_and_the_size_is_kept(app):
    left_before = rect(app, ".column-left")["width"]
    stage_before = stage_width(app)
    handle = rect(app, '[data-testid="resize-left"]')
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    mouse = app.page.mouse
    mouse.move(x, y)
    mouse.down()
    mouse.move(x + 40, y, steps=4)
    mouse.move(x + 80, y, steps=4)
    mouse.up()
    app.wait("(w) => Math.abs(document.querySelector('.column-left').getBoundingClientRect().width - (w + 80)) <= 2", left_before)
    assert abs(stage_width(app) - (stage_before - 80)) <= 2, "the canvas gives up what the column takes"
    saved = app.js("() => localStorage.getItem('invokeCanvas.layout.left')")
    assert saved is not None and abs(float(saved) - (left_before + 80)) <= 2, saved

    # the right column from the keyboard: the handle is focusable, arrows resize it
    right_before = rect(app, ".column-right")["width"]
    app.tid("resize-right").focus()
    app.key("ArrowLeft", times=2)  # the right column grows to the left
    app.wait("(w) => document.querySelector('.column-right').getBoundingClientRect().width >= w + 30", right_before)
    right_after = rect(app, ".column-right")["width"]

    app.page.reload()
    app.wait_ready()
    assert abs(rect(app, ".column-left")["width"] - (left_before + 80)) <= 2, "the dragged width survives a reload"
    assert abs(rect(app, ".column-right")["width"] - right_after) <= 1
    assert stage_width(app) >= 700

    # a double-click puts the default back
    app.tid("resize-left").dblclick()
    app.wait("(w) => Math.abs(document.querySelector('.column-left').getBoundingClientRect().width - w) <= 1", left_before)


# ---- the mode badge --------------------------------------------------------------------------------------------


def test_mode_badge_follows_what_is_in_the_box(app):
    set_up_job(app, "a boat at sea")
    wait_mode(app, "txt2img")
    assert app.tid("mode-badge").inner_text().strip() == "Text to image"
    assert "no raster pixels" in app.tid("mode-badge").get_attribute("title")

    raster = selected_layer(app)
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")  # the whole box painted
    wait_mode(app, "img2img")
    assert app.tid("mode-badge").inner_text().strip() == "Image to image"

    add_layer(app, "inpaint_mask")
    brush(app, [(40, 40), (80, 70)], size=20)
    wait_mode(app, "inpaint")
    assert app.tid("mode-badge").inner_text().strip() == "Inpaint"
    assert "inpaint mask" in app.tid("mode-badge").get_attribute("title")

    # hiding the mask: nothing to inpaint, the covered box is repainted as a whole
    mask_id = selected_layer(app)
    browser_helpers.layer_row(app, mask_id).locator('[data-testid="layer-visibility"]').click()
    wait_mode(app, "img2img")
    browser_helpers.layer_row(app, mask_id).locator('[data-testid="layer-visibility"]').click()
    wait_mode(app, "inpaint")

    # the box moved half off the painting: part of it is empty, so it outpaints (the mask does not matter)
    app.tid("canvas-stage").focus()
    app.key("c")
    app.drag([(BOX / 2, BOX / 2), (BOX / 2 + 30, BOX / 2), (BOX + 40, BOX / 2)], steps=6)
    b = app.record("bbox")
    assert b["x"] > 16, b
    wait_mode(app, "outpaint")
    assert app.tid("mode-badge").inner_text().strip() == "Outpaint"
    assert "partly empty" in app.tid("mode-badge").get_attribute("title")

    # undo the move: the box is covered again
    app.key("Control+z")
    app.wait("() => window.__app.store.get('bbox').x === 0")
    wait_mode(app, "inpaint")
    assert raster in app.layer_rows()


def test_mode_badge_is_image_to_image_after_accepting_a_result(app, server):
    set_up_job(app, "a field of flowers")
    wait_mode(app, "txt2img")
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    assert server.wait_items([item["id"]], timeout=90)[0]["status"] == "completed"
    browser_helpers.wait_staged(app)
    assert mode(app) == "txt2img", "a staged result is not on the canvas yet"
    app.click("staging-accept")
    wait_mode(app, "img2img")


# ---- progress on the Invoke button ------------------------------------------------------------------------------


def test_invoke_button_shows_progress_and_the_queued_count(app, server):
    set_up_job(app, "a windmill", steps=8)
    app.js(
        """() => {
          const seen = window.__invokeSeen = {counts: [], progress: []};
          const btn = document.querySelector('[data-testid=invoke]');
          const look = () => {
            const count = btn.querySelector('[data-testid=queue-count]');
            if (count && !count.hidden) seen.counts.push(count.textContent);
            const bar = btn.querySelector('[data-testid=invoke-progress]');
            if (bar && !bar.hidden) seen.progress.push(Number(bar.getAttribute('aria-valuenow') || 0));
          };
          new MutationObserver(look).observe(btn, {subtree: true, attributes: true, childList: true, characterData: true});
        }"""
    )
    # paused: two invokes wait in the queue, the button counts them, nothing runs (no bar)
    app.click("queue-pause")
    app.wait("() => document.querySelector('[data-testid=queue-pause]').textContent.includes('Resume')")
    try:
        known = queue_ids(server)
        app.click("invoke")
        first = last_item(server, known)
        app.click("invoke")
        app.wait("() => document.querySelector('[data-testid=queue-count]').textContent === '2'")
        assert app.tid("queue-count").is_visible()
        assert app.js("() => document.querySelector('[data-testid=invoke-progress]').hidden"), "nothing runs yet"
    finally:
        app.click("queue-pause")  # resume
    app.wait("() => document.querySelector('[data-testid=queue-pause]').textContent.includes('Pause')")
    items = [i for i in server.get("/api/v1/queue/items", params={"limit": 1000}).json() if i["id"] >= first["id"]]
    assert len(items) == 2, items
    done = server.wait_items([i["id"] for i in items], timeout=120)
    assert all(d["status"] == "completed" for d in done), done
    # everything done: no count, no bar
    app.wait(
        "() => document.querySelector('[data-testid=queue-count]').hidden"
        " && document.querySelector('[data-testid=invoke-progress]').hidden"
    )
    seen = app.js("() => window.__invokeSeen")
    assert "2" in seen["counts"] and "1" in seen["counts"], seen
    assert seen["progress"], f"the Invoke button never showed progress: {seen}"
    assert any(0 < p <= 100 for p in seen["progress"]), seen
