"""Tablet touch on the canvas and board reordering in the gallery, in headless Chromium against the real server.

Touch: real touch input through the DevTools protocol (`Input.dispatchTouchEvent`) in a context made with
`has_touch=True` (Chromium then turns the touches into pointer events of pointerType "touch", as on a
tablet). One finger paints with the brush like a pen; two fingers pan (midpoint) and pinch-zoom (spread)
about their midpoint; a second finger landing during a stroke drops that stroke as Esc does: no pixel
changes and no undo step.

Boards: the gallery's board tree reorders siblings by dragging a board onto the upper or lower part of a
sibling row (the middle still nests into the row); the order comes back from `GET /api/v1/boards` and
shows in the tree after a reload.
Every test fails on any browser console error.
"""

from __future__ import annotations


import browser_helpers
import pytest
import requests
from browser_helpers import App, add_layer, app_session, board_row, brush, create_board, selected_layer

# the shared pytest fixtures (pytest finds them by name in this module; this module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


@pytest.fixture
def touch_app(browser, server, tmp_path, request):
    """Like the shared `app` fixture, in a context with a touch screen."""
    for a in app_session(browser, server, tmp_path, request, has_touch=True):
        a.cdp = a.page.context.new_cdp_session(a.page)
        yield a


# ---- touch ------------------------------------------------------------------------------------------------


class Fingers:
    """Touch points on the page through CDP; every event lists all fingers still down (ids are stable)."""

    def __init__(self, app: App):
        self.app = app
        self.down: dict[int, tuple[float, float]] = {}

    def _send(self, kind: str, points: dict[int, tuple[float, float]]) -> None:
        touch_points = [{"x": x, "y": y, "id": i} for i, (x, y) in points.items()]
        self.app.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    def press(self, finger: int, at: tuple[float, float]) -> None:
        self.down[finger] = at
        self._send("touchStart", self.down)

    def move(self, moves: dict[int, tuple[float, float]], steps: int = 6) -> None:
        start = {f: self.down[f] for f in moves}
        for k in range(1, steps + 1):
            t = k / steps
            for f, (x1, y1) in moves.items():
                x0, y0 = start[f]
                self.down[f] = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
            self._send("touchMove", self.down)

    def lift(self, finger: int) -> None:
        # Chromium's CDP releases the points a touchEnd lists (all of them when it lists none)
        self._send("touchEnd", {finger: self.down.pop(finger)})


def canvas_to_screen_point(view: dict, p: tuple[float, float]) -> tuple[float, float]:
    return view["x"] + p[0] * view["scale"], view["y"] + p[1] * view["scale"]


def screen_to_canvas_point(view: dict, p: tuple[float, float]) -> tuple[float, float]:
    return (p[0] - view["x"]) / view["scale"], (p[1] - view["y"]) / view["scale"]


def stage_origin(app: App) -> tuple[float, float]:
    return tuple(
        app.js("() => { const r = window.__app.canvas.stage.content.getBoundingClientRect(); return [r.left, r.top]; }")
    )


def test_touch_one_finger_paints_two_fingers_pan_and_pinch_without_painting(touch_app):
    app = touch_app
    seen = app.js(
        """() => { window.__touchKinds = new Set();
           document.addEventListener('pointerdown', (e) => window.__touchKinds.add(e.pointerType), true); return true; }"""
    )
    assert seen
    layer = add_layer(app, "raster")
    brush(app, [(10, 10), (12, 12)], size=8)  # select the brush (a tiny mouse dot to start from)
    before_dot = app.export(layer["id"])
    hist0 = app.js("() => window.__app.history.size")

    # one finger paints like a pen
    fingers = Fingers(app)
    fingers.press(1, app.to_client(40, 100))
    fingers.move({1: app.to_client(160, 100)})
    fingers.lift(1)
    app.settle()
    assert "touch" in app.js("() => [...window.__touchKinds]"), "CDP touches reach the page as touch pointers"
    painted = app.export(layer["id"])
    assert painted["url"] != before_dot["url"], "a one-finger touch paints"
    assert app.js("() => window.__app.history.size") == hist0 + 1, "a one-finger stroke is one undo step"
    hist1 = hist0 + 1
    app.shot("one-finger-stroke")

    # two fingers: the first starts a stroke, the second lands (stroke dropped), then pan + spread
    view0 = app.view()
    ox, oy = stage_origin(app)
    a0 = app.to_client(40, 200)
    fingers.press(1, a0)
    fingers.move({1: (a0[0] + 30, a0[1] + 10)}, steps=4)  # the first finger paints a little ...
    b0 = (a0[0] + 30 + 120, a0[1] + 10)
    fingers.press(2, b0)  # ... until the second finger lands
    a1, b1 = (a0[0] + 30, a0[1] + 10), b0
    mid0 = ((a1[0] + b1[0]) / 2 - ox, (a1[1] + b1[1]) / 2 - oy)
    anchor = screen_to_canvas_point(view0, mid0)  # the canvas point under the fingers' midpoint
    # spread from 120 px apart to 240 (2x) while the midpoint moves 50 px right, 30 px down
    a2 = (a1[0] + 50 - 60, a1[1] + 30)
    b2 = (b1[0] + 50 + 60, b1[1] + 30)
    fingers.move({1: a2, 2: b2}, steps=8)
    mid2 = ((a2[0] + b2[0]) / 2 - ox, (a2[1] + b2[1]) / 2 - oy)
    fingers.move({1: (a2[0] - 5, a2[1]), 2: (b2[0] - 5, b2[1])}, steps=2)  # a last small pan with both
    mid3 = (mid2[0] - 5, mid2[1])
    fingers.lift(2)
    fingers.move({1: (a2[0] + 100, a2[1] + 100)}, steps=4)  # the remaining finger neither paints nor pans
    fingers.lift(1)
    app.settle()
    view1 = app.view()
    app.shot("after-pinch")
    assert view1["scale"] == pytest.approx(view0["scale"] * 2, rel=1e-3), (view0, view1)
    under = screen_to_canvas_point(view1, mid3)
    assert under == pytest.approx(anchor, abs=0.5), "the canvas point under the fingers stays under their midpoint"
    assert app.export(layer["id"])["url"] == painted["url"], "no pixel changed: the first finger's stroke was dropped"
    assert app.js("() => window.__app.history.size") == hist1, "no undo step from a two-finger gesture"
    assert not app.js("() => window.__app.history.canRedo"), "the dropped stroke is not a redo step either"

    # pinch in (fingers closer) zooms out about the midpoint; nothing painted
    w, h = app.js("() => [window.__app.canvas.stage.width(), window.__app.canvas.stage.height()]")
    centre = (w / 2, h / 2)
    c = (ox + centre[0], oy + centre[1])
    fingers.press(1, (c[0] - 150, c[1]))
    fingers.press(2, (c[0] + 150, c[1]))
    anchor = screen_to_canvas_point(view1, centre)
    fingers.move({1: (c[0] - 50, c[1]), 2: (c[0] + 50, c[1])}, steps=6)
    fingers.lift(1)
    fingers.lift(2)
    app.settle()
    view2 = app.view()
    assert view2["scale"] == pytest.approx(view1["scale"] / 3, rel=1e-3)
    assert screen_to_canvas_point(view2, centre) == pytest.approx(anchor, abs=0.5)
    assert app.export(layer["id"])["url"] == painted["url"]
    assert app.js("() => window.__app.history.size") == hist1

    # after the gesture a single finger paints again
    fingers.press(3, app.to_client(40, 140))
    fingers.move({3: app.to_client(160, 140)})
    fingers.lift(3)
    app.settle()
    assert app.export(layer["id"])["url"] != painted["url"], "one finger paints again after a pinch"
    assert app.js("() => window.__app.history.size") == hist1 + 1
    assert selected_layer(app) == layer["id"]


def test_pen_stroke_with_a_resting_palm_paints_and_leaves_the_view(touch_app):
    """A pen stroke (CDP mouse events with pointerType "pen") paints as before, and two touches landing and
    spreading while the pen is down (a palm) neither zoom nor cancel the pen's stroke."""
    app = touch_app
    layer = add_layer(app, "raster")
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("b")
    view0 = app.view()
    hist0 = app.js("() => window.__app.history.size")

    def pen(kind: str, at: tuple[float, float], buttons: int = 1) -> None:
        app.cdp.send(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": at[0],
                "y": at[1],
                "button": "left",
                "buttons": buttons,
                "clickCount": 1,
                "pointerType": "pen",
                "force": 0.6,
            },
        )

    kinds = app.js(
        "() => { window.__kinds = []; document.addEventListener('pointerdown', (e) => window.__kinds.push(e.pointerType), true); return true; }"
    )
    assert kinds
    a, b = app.to_client(20, 60), app.to_client(200, 60)
    pen("mouseMoved", a, 0)
    pen("mousePressed", a)
    for k in range(1, 6):
        pen("mouseMoved", (a[0] + (b[0] - a[0]) * k / 10, a[1]))
    fingers = Fingers(app)
    p1, p2 = app.to_client(60, 200), app.to_client(120, 200)
    fingers.press(1, p1)
    fingers.press(2, p2)
    fingers.move({1: (p1[0] - 60, p1[1]), 2: (p2[0] + 60, p2[1])})
    for k in range(6, 11):
        pen("mouseMoved", (a[0] + (b[0] - a[0]) * k / 10, a[1]))
    fingers.lift(1)
    fingers.lift(2)
    pen("mouseReleased", b, 0)
    app.settle()
    assert "pen" in app.js("() => window.__kinds") and "touch" in app.js("() => window.__kinds")
    assert app.view() == view0, "touches beside a pen stroke are no pinch"
    px = app.export_pixels(layer["id"])
    assert px is not None and px[2].shape[1] >= 170, "the whole pen stroke was painted"
    assert app.js("() => window.__app.history.size") == hist0 + 1


# ---- boards: reorder siblings by dragging --------------------------------------------------------------------


def api_tree(app: App) -> list:
    return requests.get(app.server.url + "/api/v1/boards", timeout=30).json()


def api_order(app: App, parent: str | None = None) -> list[str]:
    """Names of a parent's sub-boards (top level when None), in the server's order."""
    nodes = api_tree(app)
    if parent is not None:
        stack = list(nodes)
        while stack:
            n = stack.pop()
            if n["board"]["name"] == parent:
                nodes = n["children"]
                break
            stack.extend(n["children"])
    return [n["board"]["name"] for n in nodes]


def ui_rows(app: App) -> list[str]:
    return app.js(
        "() => [...document.querySelectorAll('[data-testid=board-row]:not([data-special])')]"
        ".map((r) => r.querySelector('.board-name').textContent)"
    )


def drag_board(app: App, name: str, onto: str, part: str, shot: str | None = None) -> None:
    """Drag a board row with the mouse onto the upper ("before"), middle ("into") or lower ("after") part
    of another row; checks the drop indicator the row shows before releasing."""
    app.page.wait_for_timeout(400)  # the tree re-renders once more after a change (debounced board events)

    def boxes():
        a, b = board_row(app, name).bounding_box(), board_row(app, onto).bounding_box()
        return (a, b) if a and b else None

    src, dst = browser_helpers.poll(boxes, timeout=5, what=f"rows {name} and {onto} shown")
    y = {"before": 3, "into": dst["height"] / 2, "after": dst["height"] - 3}[part]
    mouse = app.page.mouse
    mouse.move(src["x"] + 40, src["y"] + src["height"] / 2)
    mouse.down()
    mouse.move(src["x"] + 44, src["y"] + src["height"] / 2 + 4, steps=2)
    mouse.move(dst["x"] + 60, dst["y"] + y, steps=6)
    mouse.move(dst["x"] + 61, dst["y"] + y, steps=1)
    app.wait(
        "([name, cls]) => [...document.querySelectorAll('[data-testid=board-row]')]"
        ".some((r) => r.querySelector('.board-name')?.textContent === name && r.classList.contains(cls))",
        [onto, f"drop-{part}"],
        timeout=5_000,
    )
    if part != "into":  # the insertion line: a 2 px pseudo-element on the row's edge
        pseudo = "::before" if part == "before" else "::after"
        height = app.js(
            "(pseudo) => getComputedStyle(document.querySelector('.drop-before, .drop-after'), pseudo).height", pseudo
        )
        assert height == "2px", height
    if shot:
        app.shot(shot)
    mouse.up()


def test_boards_reorder_by_dragging_onto_upper_lower_part_of_a_row(app):
    names = ["Alpha", "Beta", "Gamma"]
    for n in names:
        create_board(app, n)
    assert api_order(app)[-3:] == names  # new boards go last
    base = [n for n in api_order(app) if n not in names]  # boards other tests of this module left
    assert ui_rows(app) == base + names

    # the third above the first: an insertion line over Alpha, then Gamma, Alpha, Beta
    drag_board(app, "Gamma", "Alpha", "before", shot="drag-gamma-above-alpha")
    assert not app.js("() => document.querySelector('.drop-before, .drop-after, .drop-into')"), (
        "no indicator after the drop"
    )
    want = base + ["Gamma", "Alpha", "Beta"]
    browser_helpers.poll(lambda: api_order(app) == want, timeout=10, what=f"order {want}")
    app.wait(
        "(want) => JSON.stringify(want) === JSON.stringify([...document.querySelectorAll('[data-testid=board-row]:not([data-special])')].map((r) => r.querySelector('.board-name').textContent))",
        want,
    )

    # the lower part of a row places after it
    drag_board(app, "Alpha", "Beta", "after")
    want = base + ["Gamma", "Beta", "Alpha"]
    browser_helpers.poll(lambda: api_order(app) == want, timeout=10, what=f"order {want}")

    # the middle still nests; before/after a row under another parent moves the board out to that place
    drag_board(app, "Beta", "Gamma", "into")
    browser_helpers.poll(lambda: api_order(app, "Gamma") == ["Beta"], timeout=10, what="Beta nested in Gamma")
    board_row(app, "Beta").wait_for(state="visible")
    drag_board(app, "Alpha", "Beta", "before")
    browser_helpers.poll(
        lambda: api_order(app, "Gamma") == ["Alpha", "Beta"], timeout=10, what="Alpha moved into Gamma before Beta"
    )
    drag_board(app, "Beta", "Gamma", "before")
    want = base + ["Beta", "Gamma"]
    browser_helpers.poll(
        lambda: api_order(app) == want and api_order(app, "Gamma") == ["Alpha"], timeout=10, what=f"order {want}"
    )

    # the tree after a reload shows the server's order
    app.page.reload()
    app.wait_ready()
    rows = ui_rows(app)
    assert rows == base + ["Beta", "Gamma", "Alpha"] or rows == base + ["Beta", "Gamma"], (
        rows
    )  # Alpha shows when Gamma is open
    assert rows.index("Beta") < rows.index("Gamma")
    app.shot("after-reload")
