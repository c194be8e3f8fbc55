"""Live painting in headless Chromium against the real server (demo model, its LCM live settings, CPU).

Turn Live on, paint ten strokes in a row, and check from the server that at most two live jobs ran after
the first, and from the page that the render on screen is the render of the last state: the last job's
layer pixels are the page's, and the render drawn over the box is that job's image pixel for pixel. Then
the render's opacity, "To layer" (undoable), "Keep" (into the gallery) and turning Live off.
"""

from __future__ import annotations

import browser_helpers
import numpy as np
from browser_helpers import (
    decode_data_url,
    fill_rect,
    generation,
    image_rgba,
    poll,
    selected_layer,
    set_up_job,
    zoom_out,
)

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app

LIVE_BOX = 128
SHOTS = "/tmp/live_{}.png"


def live_items(server) -> list[dict]:
    return [i for i in server.get("/api/v1/queue/items", params={"limit": 1000}).json() if i["live"]]


def live_state(app) -> dict:
    return app.js("() => window.__app.live.state()")


def wait_caught_up(app, timeout: float = 120_000) -> dict:
    """Until the render on screen is the render of the last change (and nothing is waiting)."""
    try:
        app.wait(
            "() => { const s = window.__app.live.state();"
            " return s.on && s.phase === 'done' && s.current && s.current.revision === s.revision; }",
            timeout=timeout,
        )
    except Exception as err:
        state = live_state(app)
        state.pop("timeline", None)
        raise AssertionError(
            f"the live render did not catch up: {state}\nlive items: {live_items(app.server)}\nconsole: {app.watch.log[-20:]}"
        ) from err
    return live_state(app)


def drawn_render(app):
    """The live render as the page draws it: its image element's pixels (RGBA), read back in the page."""
    url = app.js(
        """() => {
          const {img} = window.__app.canvas.renderer.liveInfo();
          if (!img) return null;
          const c = document.createElement('canvas');
          c.width = img.naturalWidth; c.height = img.naturalHeight;
          c.getContext('2d').drawImage(img, 0, 0);
          return c.toDataURL('image/png');
        }"""
    )
    return decode_data_url(url) if url else None


def stage_mean(app, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The mean RGB the stage draws over a canvas rectangle (the Konva pixel layer's canvas)."""
    return np.array(app.js(
        """([x0, y0, x1, y1]) => {
          const app = window.__app;
          app.canvas.flush();
          const v = app.store.get('view');
          const c = app.canvas.stage.getLayers()[0].getCanvas()._canvas;
          const r = c.width / app.canvas.stage.width();
          const sx = Math.round((v.x + x0 * v.scale) * r), sy = Math.round((v.y + y0 * v.scale) * r);
          const w = Math.max(1, Math.round((x1 - x0) * v.scale * r)), h = Math.max(1, Math.round((y1 - y0) * v.scale * r));
          const d = c.getContext('2d').getImageData(sx, sy, w, h).data;
          const sum = [0, 0, 0];
          for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
          return sum.map((t) => t / (d.length / 4));
        }""",
        [x0, y0, x1, y1],
    ))


def test_live_painting_ten_strokes_end_on_the_render_of_the_last_state(app, server):
    set_up_job(app, "a lighthouse on a cliff", width=LIVE_BOX, height=LIVE_BOX)
    config = server.get("/api/v1/config").json()["live"]
    demo = next(m for m in server.get("/api/v1/models").json() if m["id"] == "demo")
    assert demo["live_defaults"]["scheduler"] == "lcm"
    raster = selected_layer(app)
    fill_rect(app, -8, -8, LIVE_BOX + 8, LIVE_BOX + 8, color="#4a78c8")  # a painted box: image to image
    before = {i["id"] for i in live_items(server)}

    app.click("live-toggle")
    assert app.tid("live-toggle").get_attribute("aria-pressed") == "true"
    first = wait_caught_up(app)
    app.page.screenshot(path=SHOTS.format("first_render"))
    [first_item] = [i for i in live_items(server) if i["id"] not in before]
    assert first_item["status"] == "completed" and first_item["priority"] == config["priority"]
    assert first["current"]["item_id"] == first_item["id"]

    # ten strokes in a row, no pause as long as the debounce between them
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("b")
    app.tid("brush-color").fill("#f2d35b")
    rng = np.random.default_rng(3)
    for k in range(10):
        y = 12 + 10 * k
        xs = sorted(rng.uniform(8, LIVE_BOX - 8, 3))
        app.drag([(xs[0], y), (xs[1], y + 4), (xs[2], y)], steps=3)
    painted = app.export_pixels(raster)
    last = wait_caught_up(app)
    app.page.screenshot(path=SHOTS.format("after_ten_strokes"))

    after = [i for i in live_items(server) if i["id"] not in before and i["id"] != first_item["id"]]
    completed = [i for i in after if i["status"] == "completed"]
    assert all(i["status"] in ("completed", "canceled") for i in after), after
    assert 1 <= len(completed) <= 2, f"at most two live jobs ran after the first: {after}"
    assert last["current"]["item_id"] == completed[-1]["id"], "the render shown is the newest job's"
    assert last["revision"] >= first["revision"] + 10, "every stroke was a change"

    # the shown job was made from the last state: its layer is the page's layer, pixel for pixel
    shown = next(i for i in after if i["id"] == last["current"]["item_id"])
    job = generation(server, shown["generation_id"])
    [layer] = [l for l in job["request"]["layers"] if l["id"] == raster]
    x, y, pixels = painted
    assert (layer["x"], layer["y"]) == (x, y)
    assert np.array_equal(image_rgba(server, layer["image_id"]), pixels)
    params = job["request"]["params"]
    assert (params["scheduler"], params["steps"], params["cfg_scale"], params["seed"]) == ("lcm", 4, 1.0, config["seed"])
    # and the render drawn over the box is that job's image
    [render_id] = job["image_ids"]
    assert last["current"]["image_id"] == render_id
    drawn = drawn_render(app)
    assert drawn is not None and np.array_equal(drawn, image_rgba(server, render_id))
    assert server.get(f"/api/v1/images/{render_id}").json()["category"] == "live"
    gallery = {i["id"] for i in server.get("/api/v1/images", params={"limit": 500}).json()["items"]}
    assert render_id not in gallery, "a live render is not a gallery image"

    # opacity 100%: the box shows the render; 0%: the painting (mean colours of the box's middle)
    q0, q1 = LIVE_BOX // 4, 3 * LIVE_BOX // 4
    app.tid("live-opacity").fill("100")
    full = stage_mean(app, q0, q0, q1, q1)
    app.tid("live-opacity").fill("0")
    none = stage_mean(app, q0, q0, q1, q1)
    render_mean = drawn[q0:q1, q0:q1, :3].reshape(-1, 3).mean(0)
    paint_mean = pixels[q0 - y:q1 - y, q0 - x:q1 - x, :3].reshape(-1, 3).mean(0)
    assert np.abs(full - render_mean).max() <= 8, (full, render_mean)
    assert np.abs(none - paint_mean).max() <= 8, (none, paint_mean)
    assert np.abs(full - none).max() > 8, "the render and the painting differ"
    app.tid("live-opacity").fill("60")
    app.settle()
    app.page.screenshot(path=SHOTS.format("opacity_60"))

    # beside the box: the render whole to the box's right, the painting in the box; the choice is kept
    app.page.select_option('[data-testid="live-placement"]', "beside")
    gap = 16  # web/app/live_lane.js BESIDE_GAP
    app.wait("(x) => window.__app.live.state().drawn.bbox?.x === x", LIVE_BOX + gap)
    assert app.tid("live-opacity").is_hidden()
    zoom_out(app, 2)  # the box and the render beside it both on screen
    beside = stage_mean(app, LIVE_BOX + gap + q0, q0, LIVE_BOX + gap + q1, q1)
    assert np.abs(beside - render_mean).max() <= 8, (beside, render_mean)  # whole, though the slider says 60%
    assert np.abs(stage_mean(app, q0, q0, q1, q1) - paint_mean).max() <= 8
    app.page.screenshot(path=SHOTS.format("beside"))
    app.page.reload()
    app.wait_ready()
    assert app.js("() => window.__app.live.state().placement") == "beside"


def test_live_render_to_layer_keep_and_off(app, server):
    set_up_job(app, "a harbour at dusk", width=LIVE_BOX, height=LIVE_BOX)
    fill_rect(app, 0, 0, LIVE_BOX, LIVE_BOX, color="#8a4b2a")
    with app.page.expect_request(lambda r: r.url.endswith("/api/v1/live/jobs")) as sent:
        app.click("live-toggle")
    lane = sent.value.post_data_json["client"]  # this tab's lane: another tab's live jobs leave it alone
    assert len(lane) == 32 and int(lane, 16) >= 0
    state = wait_caught_up(app)
    render_id = state["current"]["image_id"]

    # To layer: a new raster layer holding the render over the box, one undo step
    layers = len(app.layers())
    app.click("live-to-layer")
    app.wait("(n) => window.__app.store.layers().length === n + 1", layers)
    new = app.layers()[-1]
    assert new["kind"] == "raster" and new["name"].startswith("Live render")
    x, y, pixels = app.export_pixels(new["id"])
    assert (x, y) == (0, 0) and np.array_equal(pixels, image_rgba(server, render_id))
    app.key("Control+z")
    app.wait("(n) => window.__app.store.layers().length === n", layers)

    # Keep: the render joins the gallery
    app.click("live-keep")
    poll(lambda: server.get(f"/api/v1/images/{render_id}").json()["category"] == "general", what="kept")
    app.wait("(id) => !!document.querySelector(`[data-testid=gallery-image][data-image-id='${id}']`)", render_id)
    app.page.screenshot(path=SHOTS.format("kept"))

    # a change queues a live job; turning Live off cancels what is queued and clears the render
    wait_caught_up(app)  # the renders of the layer added and undone are in
    server.post("/api/v1/queue/pause")
    try:
        fill_rect(app, 20, 20, 60, 60, color="#222222")
        app.wait("() => window.__app.live.state().open.length === 1", timeout=10_000)
        [waiting] = app.js("() => window.__app.live.state().open")
        app.click("live-toggle")
        poll(lambda: server.get(f"/api/v1/queue/items/{waiting}").json()["status"] == "canceled", what="canceled")
    finally:
        server.post("/api/v1/queue/resume")
    off = live_state(app)
    assert off["on"] is False and off["current"] is None and off["drawn"]["src"] is None
    # a reload keeps the tab's lane (sessionStorage)
    app.page.reload()
    app.wait_ready()
    with app.page.expect_request(lambda r: r.url.endswith("/api/v1/live/jobs")) as again:
        app.click("live-toggle")
    assert again.value.post_data_json["client"] == lane
    wait_caught_up(app)
    app.click("live-toggle")
    assert app.tid("live-toggle").get_attribute("aria-pressed") == "false"
    # queue panel: live items are the Live bar's, not listed
    listed = app.js("() => [...document.querySelectorAll('[data-testid=queue-item]')].map((r) => Number(r.dataset.itemId))")
    assert waiting not in listed and state["current"]["item_id"] not in listed
