"""Helpers for the browser tests and the canvas bench: headless Debian Chromium driving the real app.

The app is driven as a person would (clicks, keys, mouse drags on the stage through the data-testid
hooks); `window.__app` is only read, for assertions.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from server_process import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path("/tmp/browser-shots")
VIEWPORT = {"width": 1400, "height": 900}


def launch(playwright, extra_args: list[str] | None = None):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or []))


def png_bytes(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_data_url(url: str):
    """A data: URL (PNG) -> RGBA numpy array."""
    import numpy as np
    from PIL import Image

    assert url.startswith("data:image/png;base64,"), url[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


class ConsoleWatch:
    """Every console error and uncaught page error of a page (tests fail on any)."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.log: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))

    def _console(self, msg) -> None:
        self.log.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            loc = msg.location or {}
            self.errors.append(f"console.error: {msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})")


class App:
    """One page of the app with the gestures and reads the tests need."""

    def __init__(self, page, server, out_dir: Path, name: str):
        self.page = page
        self.server = server
        self.out_dir = out_dir
        self.name = name
        self.shots = 0

    # ---- boot ---------------------------------------------------------------------------------------
    def open(self, timeout: float = 30_000) -> App:
        self.page.goto(self.server.url + "/")
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30_000) -> None:
        try:
            self.page.wait_for_function(
                "() => document.body.classList.contains('ready') && window.__app && window.__app.store"
                " && document.querySelector('[data-testid=connection]')?.dataset.state === 'online'",
                timeout=timeout,
                polling=100,
            )
        except Exception as err:
            state = self.page.evaluate(
                "() => ({body: document.body.className, app: !!window.__app, boot: document.getElementById('boot')?.textContent,"
                " connection: document.querySelector('[data-testid=connection]')?.dataset.state})"
            )
            raise AssertionError(f"the app did not start: {state}") from err
        self.settle()

    def settle(self, frames: int = 2) -> None:
        """Let the renderer draw (a couple of animation frames)."""
        self.page.evaluate(
            "(n) => new Promise((done) => { const step = (k) => k ? requestAnimationFrame(() => step(k - 1)) : done(); step(n); })",
            frames,
        )

    # ---- screenshots ----------------------------------------------------------------------------------
    def shot(self, label: str) -> Path:
        self.settle()
        self.shots += 1
        path = self.out_dir / f"{self.shots:02d}-{label}.png"
        self.page.screenshot(path=str(path))
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"{self.name}.png")  # the last one, for humans
        shutil.copyfile(path, SHOTS / f"{self.name}-{self.shots:02d}-{label}.png")
        return path

    # ---- UI -----------------------------------------------------------------------------------------------
    def tid(self, testid: str):
        return self.page.locator(f'[data-testid="{testid}"]')

    def click(self, testid: str) -> None:
        self.tid(testid).first.click()

    def fill(self, testid: str, value, commit: bool = True) -> None:
        """Type into a field as a person would; commit fires `change` (Tab out of it)."""
        box = self.tid(testid).first
        box.click()
        box.fill(str(value))
        if commit:
            box.press("Tab")

    def key(self, combo: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.keyboard.press(combo)

    # ---- stage geometry -------------------------------------------------------------------------------
    def to_client(self, x: float, y: float) -> tuple[float, float]:
        """Canvas pixel -> page client coordinates (through the current view)."""
        return tuple(
            self.page.evaluate(
                """([x, y]) => {
                  const stage = window.__app.canvas.stage;
                  const r = stage.content.getBoundingClientRect();
                  const v = window.__app.store.get('view');
                  return [r.left + v.x + x * v.scale, r.top + v.y + y * v.scale];
                }""",
                [x, y],
            )
        )

    def view(self) -> dict:
        return self.page.evaluate("() => window.__app.store.get('view')")

    def drag(self, points: list[tuple[float, float]], steps: int = 4, button: str = "left") -> None:
        """Press at the first canvas point, move through the others, release (a mouse gesture)."""
        mouse = self.page.mouse
        cx, cy = self.to_client(*points[0])
        mouse.move(cx, cy)
        mouse.down(button=button)
        for p in points[1:]:
            cx, cy = self.to_client(*p)
            mouse.move(cx, cy, steps=steps)
        mouse.up(button=button)

    # ---- state reads ---------------------------------------------------------------------------------------
    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def record(self, record_id: str):
        return self.js("(id) => window.__app.store.get(id) ?? null", record_id)

    def layers(self) -> list[dict]:
        return self.js("() => window.__app.store.layers()")

    def layer_rows(self) -> list[str]:
        return self.js("() => [...document.querySelectorAll('[data-testid=layer-row]')].map((r) => r.dataset.layerId)")

    def export(self, layer_id: str):
        """The layer's painted pixels: {x, y, width, height, url (PNG data URL)} or None."""
        return self.js(
            """(id) => {
              const e = window.__app.canvas.pixels.exportLayer(id);
              if (!e) return null;
              let c = e.canvas;
              if (!c.toDataURL) { const d = document.createElement('canvas'); d.width = c.width; d.height = c.height; d.getContext('2d').drawImage(c, 0, 0); c = d; }
              return {x: e.x, y: e.y, width: e.width, height: e.height, url: c.toDataURL('image/png')};
            }""",
            layer_id,
        )

    def export_pixels(self, layer_id: str):
        """(x, y, RGBA numpy array) of a layer's painted pixels, or None when it is empty."""
        e = self.export(layer_id)
        if e is None:
            return None
        return e["x"], e["y"], decode_data_url(e["url"])

    def wait(self, predicate: str, arg=None, timeout: float = 30_000):
        return self.page.wait_for_function(predicate, arg=arg, timeout=timeout, polling=100)

    def drop_files(
        self, selector: str, files: list[tuple[str, str, bytes]], at: tuple[float, float] | None = None
    ) -> None:
        """Drag files from the desktop onto an element: dragenter, dragover, drop with a DataTransfer holding
        Files built in the page from the bytes. `at`: client point (default: the element's centre)."""
        target = self.page.locator(selector).first
        box = target.bounding_box()
        cx, cy = at if at else (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        payload = [[name, mime, base64.b64encode(data).decode()] for name, mime, data in files]
        dt = self.page.evaluate_handle(
            """(files) => {
              const dt = new DataTransfer();
              for (const [name, type, b64] of files) {
                const bin = atob(b64); const bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                dt.items.add(new File([bytes], name, {type}));
              }
              return dt;
            }""",
            payload,
        )
        init = {"dataTransfer": dt, "clientX": cx, "clientY": cy, "bubbles": True, "cancelable": True}
        for event in ("dragenter", "dragover", "drop"):
            target.dispatch_event(event, init)
        dt.dispose()


def poll(fn, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    """Call fn until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not met in {timeout}s (last: {last!r})")


BOX = 128  # generation box side: tiny jobs
STEPS = 3


# ---- pytest fixtures and gestures shared by the browser test files (tests/test_browser*.py) -----------------
# A test module imports the fixtures by name (`from browser_helpers import app, browser, server`); each
# module gets its own server (module scope).


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import ServerProcess

    srv = ServerProcess(tmp_path_factory.mktemp("browser-root"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def app(browser, server, tmp_path, request):
    """A fresh browser context (empty localStorage: a new canvas) with the app loaded."""
    yield from app_session(browser, server, tmp_path, request)


def app_session(browser, server, tmp_path, request, viewport: dict | None = None, **context_options):
    """The body of the `app` fixture, for fixtures that need other context options (a touch screen, another
    window size...): yields the loaded App; afterwards the end screenshot, and a failure on any browser
    console error."""
    context = browser.new_context(viewport=viewport or VIEWPORT, **context_options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = ConsoleWatch(page)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    for old in SHOTS.glob(f"{name}*.png") if SHOTS.exists() else []:
        old.unlink()
    a = App(page, server, tmp_path, name)
    a.watch = watch
    forget_canvases(server)
    a.open()
    yield a
    try:
        a.shot("end")
    finally:
        context.close()
    assert not watch.errors, "browser console errors:\n" + "\n".join(watch.errors)


def forget_canvases(server) -> None:
    """Delete every saved canvas: a fresh browser opens the most recently edited one, and each test
    starts on a blank canvas of its own."""
    for c in server.get("/api/v1/canvas").json():
        assert server.delete(f"/api/v1/canvas/{c['id']}").status_code == 200


# ---- shared gestures -----------------------------------------------------------------------------------------


def set_up_job(app: App, prompt: str, width: int = BOX, height: int = BOX, steps: int = STEPS) -> None:
    """Prompt, steps and a small generation box typed into the Generate panel; then Fit the view."""
    app.fill("prompt", prompt, commit=False)
    app.fill("steps", steps)
    app.fill("bbox-width", width)
    app.fill("bbox-height", height)
    app.click("view-fit")
    zoom_out(app)
    s = app.record("settings")
    b = app.record("bbox")
    assert (s["prompt"], s["steps"]) == (prompt, steps)
    assert (b["width"], b["height"]) == (width, height)


def zoom_out(app: App, notches: int = 3) -> None:
    """Mouse wheel over the middle of the stage: zoom out about the cursor (room around the box)."""
    box = app.tid("canvas-stage").bounding_box()
    app.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = app.view()["scale"]
    for _ in range(notches):
        app.page.mouse.wheel(0, 120)
    app.wait("(s) => window.__app.store.get('view').scale < s * 0.7", before)
    app.settle()


def fill_rect(app: App, x0: float, y0: float, x1: float, y1: float, color: str | None = None) -> None:
    """Rectangle tool (R): drag a rectangle on the stage; it fills the selected layer."""
    if color:
        app.tid("brush-color").fill(color)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("r")
    assert app.record("tool")["name"] == "rect"
    app.drag([(x0, y0), (x1, y1)], steps=6)


def brush(app: App, points: list[tuple[float, float]], size: int | None = None) -> None:
    """Brush (B): one stroke through the canvas points."""
    if size is not None:
        app.fill("brush-size", size)
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("b")
    assert app.record("tool")["name"] == "brush"
    app.drag(points, steps=5)


def selected_layer(app: App) -> str:
    """The layer the tools paint on: the selected row of the Layers panel."""
    rows = app.page.locator('[data-testid="layer-row"][aria-selected="true"]')
    assert rows.count() == 1, f"{rows.count()} selected layer rows"
    return rows.first.get_attribute("data-layer-id")


def add_layer(app: App, kind: str) -> dict:
    before = {l["id"] for l in app.layers()}
    app.click(f"layer-add-{kind}")
    added = [l for l in app.layers() if l["id"] not in before]
    assert len(added) == 1 and added[0]["kind"] == kind, added
    layer = added[0]
    assert selected_layer(app) == layer["id"], "a new layer is the one the tools paint on"
    assert layer["id"] in app.layer_rows()
    return layer


def watch_queue(app: App) -> None:
    """Record every queue row the panel shows (status, step label, bar width) and every toast, even
    short-lived ones, in window.__seen."""
    app.js(
        """() => {
          const seen = window.__seen = {statuses: [], steps: [], bars: []};
          const look = (root) => {
            if (!(root instanceof HTMLElement)) return;
            const rows = root.matches('[data-testid=queue-item]') ? [root] : [...root.querySelectorAll('[data-testid=queue-item]')];
            for (const row of rows) {
              seen.statuses.push(row.dataset.itemId + ':' + row.dataset.status);
              const step = row.querySelector('.queue-step')?.textContent;
              if (step) seen.steps.push(step);
              const bar = row.querySelector('[role=progressbar]');
              if (bar) seen.bars.push(Number(bar.getAttribute('aria-valuenow')));
            }
          };
          seen.toasts = [];
          new MutationObserver((records) => {
            for (const r of records) r.addedNodes.forEach((n) => n.dataset && n.dataset.message && seen.toasts.push([n.dataset.kind, n.dataset.message]));
          }).observe(document.getElementById('toasts'), {childList: true});
          const queue = document.querySelector('[data-testid=queue-list]');
          new MutationObserver((records) => {
            for (const r of records) {
              if (r.type === 'childList') r.addedNodes.forEach(look);
              else look(r.target.closest ? r.target.closest('[data-testid=queue-item]') : null);
            }
          }).observe(queue, {childList: true, subtree: true, characterData: true, attributes: true});
        }"""
    )


def last_item(server: ServerProcess, known: set[int]) -> dict:
    """The queue item this test's invoke added (the newest one not in `known`)."""

    def fresh():
        items = [i for i in server.get("/api/v1/queue/items", params={"limit": 1000}).json() if i["id"] not in known]
        return items[-1] if items else None

    return poll(fresh, timeout=20, what="a new queue item")


def queue_ids(server: ServerProcess) -> set[int]:
    return {i["id"] for i in server.get("/api/v1/queue/items", params={"limit": 1000}).json()}


def generation(server: ServerProcess, generation_id: str) -> dict:
    response = server.get(f"/api/v1/history/{generation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def image_rgba(server: ServerProcess, image_id: str):
    """An image file of the server as an RGBA numpy array."""
    import numpy as np
    from PIL import Image

    response = server.get(f"/api/v1/images/{image_id}/file")
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def wait_staged(app: App, timeout: float = 60_000) -> dict:
    app.wait("() => (window.__app.store.get('staging')?.items || []).length > 0", timeout=timeout)
    app.tid("staging-accept").wait_for(state="visible")
    return app.record("staging")


def layer_row(app: App, layer_id: str):
    return app.page.locator(f'[data-testid="layer-row"][data-layer-id="{layer_id}"]')


# ---- boards ---------------------------------------------------------------------------------------------------------


def board_row(app: App, name: str):
    return app.page.locator(
        '[data-testid="board-row"]', has=app.page.locator(".board-name", has_text=re.compile(f"^{name}$"))
    )


def create_board(app: App, name: str, parent: str | None = None) -> Any:
    if parent:
        row = board_row(app, parent)
        row.hover()
        row.locator('[data-testid="board-add-child"]').click()
    else:
        app.click("board-add")
    dialog = app.tid("board-name-dialog")
    dialog.wait_for(state="visible")
    dialog.locator('[data-testid="dialog-input"]').fill(name)
    dialog.locator('[data-testid="dialog-ok"]').click()
    board_row(app, name).wait_for(state="visible")
    return board_row(app, name)
