"""Masks and regions over a staged result, in headless Chromium against the real server: while a result is
staged in the box, painting a regional-guidance (or inpaint-mask) layer there shows its tint ABOVE the staged
image, and a raster layer painted there stays hidden UNDER it. Read from the stage canvas's own pixels.
Every test fails on any browser console error (the shared `app` fixture).
"""

from __future__ import annotations

import io

import browser_helpers
import numpy as np
from PIL import Image

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app

BOX = {"x": 0, "y": 0, "width": 256, "height": 256}
GREY = (128, 128, 128)
MASK_ALPHA = 0.5  # web/canvas/render.js MASK_ALPHA


def upload_grey(server) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((BOX["height"], BOX["width"], 3), GREY, dtype=np.uint8)).save(buffer, format="PNG")
    response = server.post("/api/v1/images", files={"file": ("grey.png", buffer.getvalue(), "image/png")})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def stage_pixel(app, x: float, y: float) -> list[int]:
    """RGBA of the stage's pixel layer (checkerboard, layers, staged image, masks) at canvas point (x, y)."""
    app.settle()
    return app.js(
        """([x, y]) => {
          window.__app.canvas.flush();
          const c = document.querySelector('[data-testid=canvas-stage] canvas');
          const v = window.__app.store.get('view');
          const k = c.width / c.clientWidth;
          const px = Math.floor((v.x + x * v.scale) * k), py = Math.floor((v.y + y * v.scale) * k);
          return [...c.getContext('2d').getImageData(px, py, 1, 1).data];
        }""",
        [x, y],
    )


def near(a, b, tol: int = 6) -> bool:
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a[:3], b[:3]))


def hex_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def stage_grey(app, server) -> None:
    image_id = upload_grey(server)
    app.js("(b) => window.__app.store.apply({put: [{...window.__app.store.get('bbox'), ...b}]})", BOX)
    items = [{"image_id": image_id, "url": f"/api/v1/images/{image_id}/file", "item_id": None, "bbox": BOX}]
    app.js(
        "(items) => window.__app.store.apply({put: [{id: 'staging', type: 'staging', items, index: 0, bbox: items[0].bbox}]}, {history: false})",
        items,
    )
    app.tid("staging-discard").wait_for(state="visible")
    browser_helpers.poll(lambda: near(stage_pixel(app, 128, 128), GREY), what="the staged image drawn")


def test_regions_and_masks_show_over_a_staged_result_and_rasters_stay_under_it(app, server):
    stage_grey(app, server)

    # a raster layer painted inside the box stays hidden under the staged result
    browser_helpers.add_layer(app, "raster")
    browser_helpers.fill_rect(app, 8, 8, 248, 248, color="#ff0000")
    browser_helpers.poll(lambda: app.export_pixels(browser_helpers.selected_layer(app)) is not None, what="raster painted")
    assert near(stage_pixel(app, 128, 128), GREY), "the raster layer shows through the staged result"

    # a region painted inside the box is tinted over the staged image (and only where it is painted)
    region = browser_helpers.add_layer(app, "regional_guidance")
    browser_helpers.fill_rect(app, 32, 32, 128, 128)
    browser_helpers.poll(lambda: app.export_pixels(region["id"]) is not None, what="region painted")
    tint = hex_rgb(region["color"])
    expected = tuple(round(g * (1 - MASK_ALPHA) + t * MASK_ALPHA) for g, t in zip(GREY, tint))
    inside = stage_pixel(app, 80, 80)
    assert near(inside, expected), f"region over the staged image: {inside[:3]}, expected {expected} (tint {tint})"
    assert near(stage_pixel(app, 200, 200), GREY), "outside the painted region the staged image is untouched"

    # an inpaint mask too (red tint)
    mask = browser_helpers.add_layer(app, "inpaint_mask")
    browser_helpers.fill_rect(app, 160, 32, 240, 112)
    browser_helpers.poll(lambda: app.export_pixels(mask["id"]) is not None, what="mask painted")
    red = hex_rgb(mask.get("color") or "#ff3b30")
    expected_mask = tuple(round(g * (1 - MASK_ALPHA) + t * MASK_ALPHA) for g, t in zip(GREY, red))
    got = stage_pixel(app, 200, 72)
    assert near(got, expected_mask), f"inpaint mask over the staged image: {got[:3]}, expected {expected_mask}"
    app.shot("overlays-over-staging")

    # discarding the staged result shows the raster again, the region tinted over it
    app.click("staging-discard")
    app.wait("() => !(window.__app.store.get('staging')?.items || []).length")
    browser_helpers.poll(lambda: near(stage_pixel(app, 200, 200), (255, 0, 0)), what="the raster shown again")
    over_red = tuple(round(r * (1 - MASK_ALPHA) + t * MASK_ALPHA) for r, t in zip((255, 0, 0), tint))
    assert near(stage_pixel(app, 80, 80), over_red), "without staging the region is tinted over the raster"
