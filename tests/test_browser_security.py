"""The app in headless Chromium against a server that requires a token (as one beyond loopback does): the
page opened with `?token=` works whole (live events, gallery thumbnails through signed URLs, a job), and a
page of another origin cannot change anything. Fails on any browser console error."""

from __future__ import annotations

import browser_helpers
import numpy as np
import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, App, ConsoleWatch, png_bytes, poll, set_up_job
from server_process import ServerProcess

browser, server = browser_helpers.browser, browser_helpers.server
TOKEN = "browser-test-token-0123456789"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("token-root"), token=TOKEN)
    yield srv
    srv.stop()


def test_the_app_works_with_a_token_and_keeps_it_out_of_image_urls(browser, token_server, tmp_path):
    image = token_server.post("/api/v1/images", files={"file": ("red.png", png_bytes(np.full((32, 32, 3), (220, 30, 30), np.uint8)), "image/png")})
    assert image.status_code == 201, image.text
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = ConsoleWatch(page)
    app = App(page, token_server, tmp_path, "token_app")
    try:
        page.goto(token_server.url + f"/?token={TOKEN}")
        app.wait_ready()  # REST with the Bearer header, Socket.IO with the token in its auth payload
        thumb = f"[data-testid=gallery-grid] img[src*='{image.json()['id']}']"
        page.wait_for_selector(thumb)
        src = page.get_attribute(thumb, "src")
        assert "sig=" in src and TOKEN not in src, src
        poll(lambda: page.evaluate(f"() => document.querySelector(\"{thumb}\").naturalWidth") > 0, what="the thumbnail loaded")
        set_up_job(app, "a red boat", width=64, height=64, steps=2)
        app.click("invoke")
        app.tid("staging-accept").wait_for(state="visible", timeout=60_000)  # the result came back over Socket.IO
        staged = page.get_attribute("[data-testid=staging-thumb] img", "src")
        poll(lambda: page.evaluate("() => document.querySelector('[data-testid=staging-thumb] img').naturalWidth") > 0, what="the staged thumbnail loaded")
        assert staged and "token=" in staged  # known by id only: the token, accepted for image files alone
        app.shot("staged")
    finally:
        context.close()
    assert not watch.errors, "browser console errors:\n" + "\n".join(watch.errors)


def test_a_page_of_another_origin_cannot_change_state(browser, server):
    """A hostile page (another origin on this machine, served here by the browser itself) sends the
    bodiless POSTs and forms a browser sends without a preflight to the loopback server, which needs no
    token: the server refuses each with 403 and nothing changes."""
    before = server.get("/api/v1/queue/status").json()
    # Chromium's Local Network Access would block these requests before they leave; other browsers send
    # them, so it is turned off here: the server must refuse them itself.
    unprotected = browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessRespectPreflightResults"])
    page = unprotected.new_page()
    try:
        page.route("http://evil.test/", lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>evil</title>"))
        page.goto("http://evil.test/")
        statuses = page.evaluate(
            """async (base) => {
                const out = [];
                for (const path of ["/api/v1/queue/pause", "/api/v1/queue/clear", "/api/v1/queue/cancel-pending"]) {
                  try { const r = await fetch(base + path, {method: "POST", mode: "no-cors"}); out.push(r.type); }
                  catch (e) { out.push("error: " + e); }
                }
                return out;
            }""",
            server.url,
        )
        assert statuses == ["opaque"] * 3, statuses  # sent, and the page learns nothing from the answer
        page.set_content(f'<form method="post" enctype="multipart/form-data" action="{server.url}/api/v1/boards">'
                         '<input name="name" value="pwned"></form>')
        with page.expect_navigation():
            page.evaluate("() => document.forms[0].submit()")
        assert "another origin" in page.content()
    finally:
        unprotected.close()
    assert server.get("/api/v1/queue/status").json() == before
    assert "pwned" not in server.get("/api/v1/boards").text
    log = server.log_text()
    assert log.count("from another origin") >= 3, log[-2000:]
