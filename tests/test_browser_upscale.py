"""The Upscale group in headless Chromium against the real server (demo models, CPU): an upscale of the box
and of the selected layer staged at the upscaled size and accepted pixel for pixel, and the hires-fix toggle
reaching a text-to-image job's metadata."""

from __future__ import annotations

import numpy as np

import browser_helpers
from browser_helpers import BOX, add_layer, fill_rect, image_rgba, last_item, queue_ids, selected_layer, set_up_job, wait_staged

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def test_upscale_the_box_and_a_layer_then_accept_at_full_size(app, server):
    set_up_job(app, "a lighthouse")
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")
    app.page.select_option('[data-testid="upscale-scale"]', "2")
    app.page.select_option('[data-testid="upscale-model"]', "demo-upscaler-x2")
    assert "random weights" in app.tid("upscale-model").inner_text()
    known = queue_ids(server)
    app.click("upscale-run")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    staged = wait_staged(app)
    assert staged["items"][0]["bbox"] == {"x": 0, "y": 0, "width": 2 * BOX, "height": 2 * BOX}
    meta = server.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()
    assert meta["mode"] == "upscale" and meta["upscale"]["model"]["id"] == "demo-upscaler-x2"
    before = {layer["id"] for layer in app.layers()}
    app.click("staging-accept")
    app.wait("(n) => window.__app.store.layers().length === n + 1", len(before))
    (new,) = [layer for layer in app.layers() if layer["id"] not in before]
    x, y, px = app.export_pixels(new["id"])
    assert (x, y, px.shape[1], px.shape[0]) == (0, 0, 2 * BOX, 2 * BOX)
    assert np.array_equal(px, image_rgba(server, staged["items"][0]["image_id"])), "the layer holds every upscaled pixel"

    # the selected layer alone: a small square painted on a new raster layer, off the box's grid
    add_layer(app, "raster")
    layer = selected_layer(app)
    fill_rect(app, 20, 20, 50, 44, color="#ff0000")
    app.page.select_option('[data-testid="upscale-source"]', "layer")
    app.page.select_option('[data-testid="upscale-scale"]', "4")
    known = queue_ids(server)
    app.click("upscale-run")
    item = last_item(server, known)
    assert server.wait_items([item["id"]], timeout=90)[0]["status"] == "completed"
    staged = wait_staged(app)
    exported = app.export(layer)
    rect = staged["items"][0]["bbox"]
    assert rect["x"] == exported["x"] // 8 * 8 and rect["y"] == exported["y"] // 8 * 8
    assert rect["width"] % 32 == 0 and rect["width"] >= 4 * exported["width"], (rect, exported)
    sent = server.get(f"/api/v1/history/{item['generation_id']}").json()["request"]
    assert [entry["id"] for entry in sent["layers"]] == [layer] and sent["params"]["upscale"]["scale"] == 4


def test_hires_fix_toggle_reaches_the_job(app, server):
    set_up_job(app, "a lighthouse")
    app.tid("hires-fix").check()
    app.page.select_option('[data-testid="hires-upscaler"]', "demo-upscaler-x2")
    assert app.record("settings")["hires_fix"] == {"scale": 2, "strength": 0.45, "upscaler": "demo-upscaler-x2"}
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    assert server.wait_items([item["id"]], timeout=90)[0]["status"] == "completed"
    staged = wait_staged(app)
    meta = server.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()
    assert meta["hires_fix"]["first_pass_size"] == [BOX // 2, BOX // 2] and meta["hires_fix"]["upscaler"]["id"] == "demo-upscaler-x2"
    app.tid("hires-fix").uncheck()
    assert app.record("settings")["hires_fix"] is None
