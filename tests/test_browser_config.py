"""The Generate panel's fields follow GET /api/v1/config in headless Chromium against the real server:
the box size is clamped to the server's generation limit, and the scheduler list is the server's.
Every test fails on any browser console error (the shared `app` fixture)."""

from __future__ import annotations

import browser_helpers
from browser_helpers import poll

# the shared pytest fixtures (pytest finds them by name in this module; this module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def config_of(server) -> dict:
    response = server.get("/api/v1/config")
    assert response.status_code == 200
    return response.json()


def wait_config(app) -> None:
    """The panel has the server's lists (its fallback list holds only the current scheduler)."""
    app.wait("() => document.querySelectorAll('[data-testid=scheduler] option').length > 1")


def test_box_size_is_clamped_to_the_servers_generation_limit(app, server):
    config = config_of(server)
    limit = config["numbers"]["bbox_width"]["max"]
    assert limit == config["max_generation_side"] == 4096
    wait_config(app)
    width, height = app.tid("bbox-width"), app.tid("bbox-height")
    assert int(width.get_attribute("max")) == limit and int(height.get_attribute("max")) == limit
    app.click("aspect-free")
    app.fill("bbox-width", 8192)
    poll(lambda: app.record("bbox")["width"] == limit, what="the box width clamped to the server's max")
    assert width.input_value() == str(limit)
    app.fill("bbox-height", 100_000)
    poll(lambda: app.record("bbox")["height"] == limit, what="the box height clamped to the server's max")
    assert height.input_value() == str(limit)
    app.fill("bbox-width", 1000)  # snapped to the multiple of 8
    poll(lambda: app.record("bbox")["width"] == 1000, what="a width inside the range kept")
    app.fill("steps", config["numbers"]["steps"]["max"] + 1)
    poll(lambda: app.record("settings")["steps"] == config["numbers"]["steps"]["max"], what="steps clamped")


def test_scheduler_select_lists_exactly_the_servers_schedulers(app, server):
    config = config_of(server)
    wait_config(app)
    options = app.js(
        "() => [...document.querySelectorAll('[data-testid=scheduler] option')].map(o => [o.value, o.textContent])"
    )
    assert options == [[s["name"], s["label"]] for s in config["schedulers"]]
    infill = app.js("() => [...document.querySelectorAll('[data-testid=infill] option')].map(o => o.value)")
    assert infill == [m["name"] for m in config["infill_methods"]]
    assert app.tid("scheduler").input_value() == config["defaults"]["params"]["scheduler"]
