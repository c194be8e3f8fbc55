"""Never lose work: the browser journal (IndexedDB), the keepalive save of a closing page, and the
reconciling open, in headless Chromium against the real server.

Each test drives its own browser contexts (a context is a browser profile: its own localStorage and
IndexedDB), because closing the page at once is the point.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

import browser_helpers
from browser_helpers import (
    VIEWPORT,
    App,
    ConsoleWatch,
    add_layer,
    brush,
    forget_canvases,
    poll,
    queue_ids,
    selected_layer,
    set_up_job,
    wait_staged,
)

server, browser = browser_helpers.server, browser_helpers.browser


class Profile:
    """A browser profile (context) and the pages opened in it; console errors fail the test."""

    def __init__(self, browser, server, tmp_path, name: str):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.server = server
        self.tmp_path = tmp_path
        self.name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.watches: list[ConsoleWatch] = []
        self.closed = False

    def open(self) -> App:
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        watch = ConsoleWatch(page)
        self.watches.append(watch)
        a = App(page, self.server, self.tmp_path, f"{self.name}-{len(self.watches)}")
        a.watch = watch
        return a.open()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.context.close()
        errors = [e for w in self.watches for e in w.errors + [m for m in w.log if "journal could not be written" in m]]
        assert not errors, "browser console errors:\n" + "\n".join(errors)


@pytest.fixture
def profiles(browser, server, tmp_path, request):
    """Make browser profiles (on a server without canvases); each closed, and its console checked, at the end."""
    forget_canvases(server)
    made: list[Profile] = []

    def make(suffix: str = "") -> Profile:
        made.append(Profile(browser, server, tmp_path, request.node.name + suffix))
        return made[-1]

    yield make
    for profile in made:
        profile.close()


def offline(profile: Profile, page) -> Callable[[], None]:
    """Refuse the page's canvas saves and loads at the network; returns the function that lifts it."""
    cdp = profile.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setBlockedURLs", {"urls": ["*/api/v1/canvas"]})
    return lambda: cdp.send("Network.setBlockedURLs", {"urls": []})


def status(a: App) -> str:
    return a.js("() => document.querySelector('[data-testid=save-status]').dataset.state")


def wait_status(a: App, state: str, timeout: float = 20_000) -> None:
    a.wait("(s) => document.querySelector('[data-testid=save-status]').dataset.state === s", state, timeout=timeout)


def server_canvas(server, canvas_id: str) -> dict:
    r = server.get(f"/api/v1/canvas/{canvas_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_stroke_then_reload_200ms_later_keeps_the_stroke(profiles, server):
    p = profiles()
    a = p.open()
    assert status(a) == "saved", "an untouched blank canvas has nothing to lose"
    layer = selected_layer(a)
    brush(a, [(20, 20), (110, 80)], size=14)
    before = a.export(layer)
    assert before is not None
    a.page.wait_for_timeout(200)
    a.page.reload()
    a.wait_ready()
    after = a.export(layer)
    assert after is not None, "the stroke is back after the reload"
    assert (after["x"], after["y"], after["width"], after["height"]) == (before["x"], before["y"], before["width"], before["height"])
    assert after["url"] == before["url"], "the same pixels"
    wait_status(a, "saved")  # and the server has it
    canvas_id = a.js("() => window.__app.current.id")
    assert server_canvas(server, canvas_id)["document"]["layers"][0].get("image_id")


def test_stroke_then_tab_closed_at_once_is_there_in_a_fresh_profile(profiles, server):
    p = profiles()
    a = p.open()
    layer = selected_layer(a)
    brush(a, [(30, 40), (120, 40), (120, 100)], size=10)
    before = a.export(layer)
    canvas_id = a.js("() => window.__app.current.id")
    a.page.close()  # at once: the autosave (1 s) never ran; the closing page's keepalive save did
    fresh = profiles("-fresh")
    b = fresh.open()
    b.wait("(id) => window.__app.current.id === id", canvas_id)  # the most recently edited canvas, not a blank one
    after = b.export(layer)
    assert after is not None, "the stroke reached the server as the tab closed"
    assert (after["x"], after["y"], after["width"], after["height"]) == (before["x"], before["y"], before["width"], before["height"])
    assert after["url"] == before["url"]
    assert status(b) == "saved"


def test_the_journal_keeps_changes_the_server_never_got(profiles, server):
    """The server unreachable for saves: "Saved locally", a reload restores from the journal alone, and
    the server catches up once it answers."""
    p = profiles()
    a = p.open()
    # the page's canvas requests refused (a keepalive one sent as a page closes still gets through)
    online = offline(p, a.page)
    layer = selected_layer(a)
    brush(a, [(10, 10), (90, 60)], size=18)
    region = add_layer(a, "regional_guidance")
    a.tid("region-prompt").fill("a red kite")
    brush(a, [(40, 30), (60, 50)], size=20)
    wait_status(a, "local")
    before = {i: a.export(i) for i in (layer, region["id"])}
    a.page.reload()
    a.wait_ready()
    a.wait("(n) => window.__app.store.layers().length === n", 2)
    assert a.record(region["id"])["prompt"] == "a red kite"
    for i, e in before.items():
        now = a.export(i)
        assert now is not None and now["url"] == e["url"], f"layer {i} restored from the journal"
    # the reloaded page could not load the canvas from the server either: all of it came from the journal
    assert status(a) == "local"
    canvas_id = a.js("() => window.__app.current.id")
    # a stroke and a reload at once: the page's last moment writes the tiles (raw, no encoder to wait for)
    brush(a, [(70, 90), (130, 95)], size=8)
    quick = a.export(layer)
    a.page.reload()
    a.wait_ready()
    a.wait("(n) => window.__app.store.layers().length === n", 2)
    assert a.export(layer)["url"] == quick["url"], "the stroke made just before the reload is back"
    online()
    brush(a, [(100, 100), (110, 110)], size=6)  # the next change syncs everything
    wait_status(a, "saved")
    doc = server_canvas(server, canvas_id)["document"]
    regions = [l for l in doc["layers"] if l["kind"] == "regional_guidance"]
    assert regions and regions[0]["region"]["prompt"] == "a red kite" and regions[0].get("image_id")


def test_accepted_result_and_region_prompt_survive_an_immediate_reload(profiles, server):
    p = profiles()
    a = p.open()
    set_up_job(a, "a lighthouse at dusk")
    a.click("invoke")
    wait_staged(a)
    a.click("staging-accept")
    a.wait("() => window.__app.store.layers().some((l) => /^Result/.test(l.name))")
    accepted = next(l for l in a.layers() if l["name"].startswith("Result"))
    a.wait("(id) => !!window.__app.canvas.pixels.exportLayer(id)", accepted["id"])
    region = add_layer(a, "regional_guidance")
    a.tid("region-prompt").fill("a flock of gulls")
    before = a.export(accepted["id"])
    a.page.reload()  # at once
    a.wait_ready()
    ids = [l["id"] for l in a.layers()]
    assert accepted["id"] in ids and region["id"] in ids, ids
    assert a.record(region["id"])["prompt"] == "a flock of gulls"
    assert not (a.record("staging") or {}).get("items"), "the accepted result is not staged again"
    now = a.export(accepted["id"])
    assert now is not None and now["url"] == before["url"], "the accepted layer keeps its pixels"


def test_a_job_queued_just_before_closing_is_staged_on_reopen(profiles, server):
    p = profiles()
    a = p.open()
    set_up_job(a, "a windmill in fog")
    known = queue_ids(server)
    a.click("invoke")
    a.wait("() => window.__app.jobs.size > 0")  # the reply arrived: the page knows its job
    a.page.close()
    item = poll(lambda: [i for i in queue_ids(server) if i not in known] or None, what="the queued item")[0]
    done = server.wait_items([item], timeout=90)[0]
    assert done["status"] == "completed", done
    b = p.open()  # the same profile, reopened
    staged = wait_staged(b)
    assert staged["items"][0]["item_id"] == item


def test_both_browsers_changes_are_kept_when_they_edited_the_same_version(profiles, server):
    """A edits offline while B saves the same canvas: when A comes back, nothing of either is lost (A's
    changes on the canvas, merged with B's or with B's version kept whole as a named copy)."""
    pa = profiles("-a")
    pb = profiles("-b")
    a = pa.open()
    brush(a, [(20, 20), (60, 60)], size=10)
    wait_status(a, "saved")
    canvas_id = a.js("() => window.__app.current.id")
    b = pb.open()
    b.wait("(id) => window.__app.current.id === id", canvas_id)
    online = offline(pa, a.page)
    a.fill("prompt", "a lighthouse in a gale", commit=False)
    wait_status(a, "local")
    theirs = add_layer(b, "raster")
    brush(b, [(90, 90), (120, 120)], size=12)
    wait_status(b, "saved")
    online()
    a.page.reload()
    a.wait_ready()
    a.wait("(id) => window.__app.current.id === id", canvas_id)
    wait_status(a, "saved")
    assert a.record("settings")["prompt"] == "a lighthouse in a gale", "A's change is on the canvas"
    mine = server_canvas(server, canvas_id)["document"]
    assert mine["params"]["prompt"] == "a lighthouse in a gale"
    if theirs["id"] not in [l["id"] for l in mine["layers"]]:
        copies = [c for c in server.get("/api/v1/canvas").json() if "another browser" in c["name"]]
        assert copies, "B's version is kept as a named copy"
        kept = server_canvas(server, copies[0]["id"])["document"]
        assert theirs["id"] in [l["id"] for l in kept["layers"] if l.get("image_id")], "with B's painted layer"
