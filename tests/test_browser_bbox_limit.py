"""The bbox tool never makes the box larger than the server's limit (GET /api/v1/config, bbox_width and
bbox_height max: the Generate panel's width/height fields use the same numbers), in headless Chromium against
the real server: zoomed far out, a handle dragged far past the limit stops at it, with the opposite edges
in place. Every test fails on any browser console error (the shared `app` fixture).
"""

from __future__ import annotations

import browser_helpers

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def limits(app, server) -> tuple[int, int]:
    numbers = server.get("/api/v1/config").json()["numbers"]
    # the page's SERVER_CONFIG (the one source the tool reads) is the server's
    app.wait("async () => (await import('/document.js')).SERVER_CONFIG !== null")
    page_numbers = app.js("async () => (await import('/document.js')).SERVER_CONFIG.numbers")
    assert page_numbers["bbox_width"]["max"] == numbers["bbox_width"]["max"]
    return numbers["bbox_width"]["max"], numbers["bbox_height"]["max"]


def drag_handle(app, corner: tuple[float, float], to_client: tuple[float, float]) -> None:
    page = app.page
    x, y = app.to_client(*corner)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(*to_client, steps=8)
    page.mouse.up()
    app.settle()


def test_dragging_a_handle_far_out_stops_at_the_servers_max(app, server):
    max_w, max_h = limits(app, server)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("c")
    assert app.record("tool")["name"] == "bbox"
    for _ in range(4):
        browser_helpers.zoom_out(app, notches=4)
        if app.view()["scale"] < 0.06:
            break
    scale = app.view()["scale"]
    stage = app.tid("canvas-stage").bounding_box()
    assert stage["width"] / scale > 2 * max_w, f"zoomed out enough to drag past the limit (scale {scale})"

    b = app.record("bbox")
    # the south-east corner to the stage's bottom-right: far more than max_w canvas pixels away
    drag_handle(app, (b["x"] + b["width"], b["y"] + b["height"]), (stage["x"] + stage["width"] - 4, stage["y"] + stage["height"] - 4))
    after = app.record("bbox")
    assert after["width"] <= max_w and after["height"] <= max_h, after
    assert after["width"] == max_w, f"the drag went past the limit and stopped at it: {after}"
    assert (after["x"], after["y"]) == (b["x"], b["y"]), "the opposite corner stays put"
    assert app.tid("bbox-width").input_value() == str(after["width"]), "the Generate panel shows the capped size"

    # undo takes the whole drag back in one step
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("Control+z")
    app.wait("(b) => { const r = window.__app.store.get('bbox'); return r.x === b.x && r.y === b.y && r.width === b.width && r.height === b.height; }", b)

    # the north-west corner to the top-left: the south-east corner stays, the size is capped again
    drag_handle(app, (b["x"], b["y"]), (stage["x"] + 4, stage["y"] + 4))
    after = app.record("bbox")
    assert after["width"] <= max_w and after["height"] <= max_h, after
    assert after["width"] == max_w, after
    assert (after["x"] + after["width"], after["y"] + after["height"]) == (b["x"] + b["width"], b["y"] + b["height"]), after
