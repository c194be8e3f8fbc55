"""The keyboard-shortcuts dialog, in headless Chromium against the real server: "?" (Shift+/) opens it
when not typing, it lists the app's one shortcut table grouped (the brush key, Ctrl+Enter, the canvas's
own keys), Esc closes it (and only it), "?" typed in the prompt is text, and the top-bar button opens it.
Every test fails on any browser console error (the shared `app` fixture).
"""

from __future__ import annotations

import io

import browser_helpers
import numpy as np
from PIL import Image

# the shared pytest fixtures (pytest finds them by name in this module; this module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app

DIALOG_OPEN = "() => !!document.querySelector('[data-testid=shortcuts-dialog]')"
DIALOG_CLOSED = "() => !document.querySelector('[data-testid=shortcuts-dialog]')"


def rows(app) -> dict[str, list[str]]:
    """combo -> the texts of its rows in the open dialog."""
    out: dict[str, list[str]] = {}
    for combo, text in app.js(
        "() => [...document.querySelectorAll('[data-testid=shortcuts-dialog] [data-testid=shortcut-row]')]"
        ".map(r => [r.dataset.combo, r.innerText])"
    ):
        out.setdefault(combo, []).append(text)
    return out


def focus_canvas(app) -> None:
    app.tid("canvas-stage").focus()


def test_question_mark_opens_the_grouped_table_and_esc_closes_it(app):
    focus_canvas(app)
    assert app.js(DIALOG_CLOSED)
    app.key("Shift+Slash")  # "?" on a US keyboard
    app.wait(DIALOG_OPEN)
    dialog = app.tid("shortcuts-dialog")
    assert dialog.is_visible()
    listed = rows(app)
    assert any("Brush" in t for t in listed.get("B", [])), listed.get("B")
    assert any("Invoke" in t for t in listed.get("Ctrl+Enter", [])), listed.get("Ctrl+Enter")
    assert any("Undo" in t for t in listed.get("Ctrl+Z", []))
    assert any("Pan" in t for t in listed.get("Space+Drag", [])), "the canvas's own keys are listed too"
    groups = app.js("() => [...document.querySelectorAll('[data-testid=shortcuts-group]')].map(g => g.dataset.group)")
    for group in ("Generate", "History", "Staging", "Tools", "Canvas"):
        assert group in groups, groups
    # the tool keys are those of the toolbar (each toolbar button names its key)
    tool_keys = app.js("async () => (await import('/panels/toolbar.js')).TOOLS.map(t => [t.key.toUpperCase(), t.label])")
    for key, label in tool_keys:
        assert any(label in t for t in listed.get(key, [])), (key, label, listed.get(key))

    # while it is open the app's keys do nothing: "E" does not switch the tool
    tool_before = app.record("tool")["name"]
    app.key("e")
    assert app.record("tool")["name"] == tool_before
    app.key("Escape")
    app.wait(DIALOG_CLOSED)
    # closed, the keys work again
    app.key("e")
    app.wait("() => window.__app.store.get('tool').name === 'eraser'")


def test_esc_closes_the_dialog_only_not_a_staged_result(app, server):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    response = server.post("/api/v1/images", files={"file": ("r.png", buffer.getvalue(), "image/png")})
    assert response.status_code in (200, 201), response.text
    image_id = response.json()["id"]
    bbox = {"x": 0, "y": 0, "width": 64, "height": 64}
    items = [{"image_id": image_id, "url": f"/api/v1/images/{image_id}/file", "item_id": None, "bbox": bbox}]
    app.js("(items) => window.__app.store.apply({put: [{id: 'staging', type: 'staging', items, index: 0, bbox: items[0].bbox}]}, {history: false})", items)
    app.tid("staging-discard").wait_for(state="visible")
    focus_canvas(app)
    app.key("Shift+Slash")
    app.wait(DIALOG_OPEN)
    app.key("Escape")
    app.wait(DIALOG_CLOSED)
    assert len(app.record("staging")["items"]) == 1, "Esc closed the dialog; it did not also discard the result"
    app.key("Escape")
    app.wait("() => !(window.__app.store.get('staging')?.items || []).length")


def test_question_mark_typed_in_the_prompt_is_text(app):
    box = app.tid("prompt").first
    box.click()
    box.press_sequentially("why?")
    assert box.input_value().endswith("why?")
    app.page.wait_for_timeout(200)
    assert app.js(DIALOG_CLOSED), "typing ? in the prompt must not open the dialog"


def test_the_top_bar_button_opens_it_and_its_close_button_closes_it(app):
    button = app.tid("shortcuts-button")
    assert button.get_attribute("title") == "Keyboard shortcuts (?)"
    assert button.evaluate("b => !!b.closest('.topbar')")
    button.click()
    app.wait(DIALOG_OPEN)
    assert any("Brush" in t for t in rows(app).get("B", []))
    app.click("shortcuts-close")
    app.wait(DIALOG_CLOSED)
    # and a click on the backdrop closes it too
    button.click()
    app.wait(DIALOG_OPEN)
    app.page.mouse.click(5, app.page.viewport_size["height"] - 5)
    app.wait(DIALOG_CLOSED)
