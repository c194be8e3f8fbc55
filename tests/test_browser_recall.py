"""LoRA stacks, region strength and recall in headless Chromium against the real server (demo models, CPU).

A LoRA built here for the demo model is installed through the models API; the page picks it in the
Generate panel's LoRA list, paints a regional-guidance layer with a prompt and a strength, invokes, and
the stored request carries both. The result is then opened in the viewer: "Recall parameters" brings the
LoRA stack back and "Recall layers" the region layer (settings and mask pixels), as one undo step.
Every test fails on any browser console error (the shared `app` fixture).
"""

from __future__ import annotations

import browser_helpers
import numpy as np
import pytest
import requests
from browser_helpers import (
    App,
    add_layer,
    brush,
    generation,
    image_rgba,
    last_item,
    layer_row,
    poll,
    queue_ids,
    selected_layer,
    set_up_job,
    wait_staged,
)

# the shared pytest fixtures (pytest finds them by name in this module; this module gets its own server)
server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory):
    """Two small random LoRA files for the demo SD1.5 architecture (built on a demo folder of our own:
    the same shapes as the server's)."""
    from invoke_core.demo import build_sd15_demo
    from invoke_core.demo_lora import build_lora

    folder = tmp_path_factory.mktemp("lora-base")
    base = build_sd15_demo(folder / "sd15")
    return {
        "watercolour": build_lora(base, folder / "watercolour.safetensors", seed=1),
        "ink": build_lora(base, folder / "ink.safetensors", seed=2),
    }


def install(server, path, name: str) -> str:
    """Install a model through the API (a background job); its model id."""
    response = server.post("/api/v1/models/install", json={"source": str(path), "name": name})
    assert response.status_code == 202, response.text
    job = response.json()["job_id"]

    def done():
        state = server.get(f"/api/v1/models/install/{job}").json()
        return state if state["status"] != "started" else None

    state = poll(done, timeout=60, what=f"install of {name}")
    assert state["status"] == "completed", state
    return state["model_id"]


@pytest.fixture(scope="module")
def loras(server, lora_files):
    """The two LoRAs installed on this module's server: name -> model id."""
    installed = {m["name"]: m for m in server.get("/api/v1/models").json() if m["kind"] == "lora"}
    ids = {}
    for name, path in lora_files.items():
        ids[name] = installed[name]["id"] if name in installed else install(server, path, name)
    models = {m["id"]: m for m in server.get("/api/v1/models").json()}
    assert all(models[i]["kind"] == "lora" and models[i]["family"] == models["demo"]["family"] for i in ids.values())
    return ids


# ---- gestures ---------------------------------------------------------------------------------------------


def lora_row(app: App, lora_id: str):
    return app.page.locator(f'[data-testid="lora-row"][data-lora-id="{lora_id}"]')


def add_lora(app: App, lora_id: str) -> None:
    """Pick the LoRA in the panel's "Add LoRA" list (waits for the list to offer it: the page reloads its
    models when an install completes)."""
    picker = app.tid("lora-add")
    app.page.locator(f'[data-testid="lora-add"] option[value="{lora_id}"]').wait_for(state="attached")
    picker.select_option(lora_id)
    lora_row(app, lora_id).wait_for(state="visible")


def set_lora_weight(app: App, lora_id: str, weight: float) -> None:
    box = lora_row(app, lora_id).locator('[data-testid="lora-weight"]')
    box.click()
    box.fill(str(weight))
    box.press("Tab")
    app.wait(
        "([id, w]) => (window.__app.store.get('settings').loras || []).some((r) => r.model === id && r.weight === w)",
        [lora_id, weight],
    )


def panel_rows(app: App) -> list[dict]:
    """What the LoRA panel shows, top to bottom: id, weight (the number box), on/off, fits."""
    return app.js(
        """() => [...document.querySelectorAll('[data-testid=lora-row]')].map((r) => ({
             id: r.dataset.loraId,
             weight: Number(r.querySelector('[data-testid=lora-weight]').value),
             enabled: r.querySelector('[data-testid=lora-enabled]').checked,
             fits: r.dataset.fits === 'true',
           }))"""
    )


def saved_document(server, canvas_id: str) -> dict:
    return server.get(f"/api/v1/canvas/{canvas_id}").json()["document"]


# ---- the tests ----------------------------------------------------------------------------------------------------


@pytest.fixture
def bare_app(browser, tmp_path_factory, tmp_path, request):
    """The app on a server of its own with no LoRA installed (whatever order the tests run in)."""
    from server_process import ServerProcess

    bare = ServerProcess(tmp_path_factory.mktemp("bare-root"))
    try:
        yield from browser_helpers.app_session(browser, bare, tmp_path, request)
    finally:
        bare.stop()


def test_lora_panel_says_how_to_install_one(bare_app):
    """A server without LoRAs: the panel says how to install one, and offers no picker."""
    app = bare_app
    panel = app.tid("lora-panel")
    panel.wait_for(state="visible")
    assert not any(m["kind"] == "lora" for m in app.server.get("/api/v1/models").json())
    empty = app.tid("lora-empty")
    assert empty.is_visible()
    assert "invoke-canvas models install" in empty.inner_text()
    assert not app.tid("lora-add").is_visible()
    app.shot("lora-empty")


def test_lora_and_region_strength_reach_the_job_and_recall_brings_them_back(app, server, loras):
    water, ink = loras["watercolour"], loras["ink"]
    set_up_job(app, "a quiet harbour")
    panel = app.tid("lora-panel")
    panel.wait_for(state="visible")

    # the LoRA panel: watercolour at 0.5, ink added and switched off (kept in the list, not sent)
    add_lora(app, water)
    set_lora_weight(app, water, 0.5)
    add_lora(app, ink)
    lora_row(app, ink).locator('[data-testid="lora-enabled"]').uncheck()
    app.wait("(id) => window.__app.store.get('settings').loras.find((r) => r.model === id).enabled === false", ink)
    assert panel_rows(app) == [
        {"id": water, "weight": 0.5, "enabled": True, "fits": True},
        {"id": ink, "weight": 1, "enabled": False, "fits": True},
    ]
    assert app.page.locator(f'[data-testid="lora-add"] option[value="{water}"]').count() == 0, (
        "added: not offered again"
    )

    # a regional-guidance layer with a prompt and strength 0.6
    region = add_layer(app, "regional_guidance")
    region_prompt = "a red lighthouse"
    app.tid("region-prompt").fill(region_prompt)
    strength = app.tid("region-strength")
    assert strength.input_value() == "0.8", "a new region's strength is 0.8"
    strength.fill("0.6")
    app.wait("(id) => window.__app.store.get(id).strength === 0.6", region["id"])
    brush(app, [(24, 24), (64, 70), (100, 40)], size=20)
    original = app.export_pixels(region["id"])
    assert original is not None
    app_region_color = app.record(region["id"])["color"]

    # a control layer (the demo ControlNet, chosen by default), weight 0.7, "prompt matters more"
    control = add_layer(app, "control")
    assert app.record(control["id"])["control"]["model"] == "demo-controlnet"
    brush(app, [(20, 100), (110, 100)], size=10)
    app.fill("control-weight", 0.7)
    app.tid("control-mode").select_option("prompt")
    app.wait("(id) => window.__app.store.get(id).control.mode === 'prompt'", control["id"])
    control_settings = app.record(control["id"])["control"]
    assert control_settings["weight"] == 0.7
    control_px = app.export_pixels(control["id"])
    app.shot("lora-and-region")
    panel.screenshot(path=str(app.out_dir / "lora-panel.png"))
    browser_helpers.SHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(browser_helpers.SHOTS / f"{app.name}-lora-panel.png"))

    # invoke: the page's request and the stored one carry the enabled LoRA and the region strength
    known = queue_ids(server)
    with app.page.expect_request("**/api/v1/canvas/jobs") as sent:
        app.click("invoke")
    body = sent.value.post_data_json
    assert body["document"]["params"]["loras"] == [{"model": water, "weight": 0.5}]
    assert "ui" not in body["document"]
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=120)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])
    request = generation(server, item["generation_id"])["request"]
    assert request["params"]["loras"] == [{"model": water, "weight": 0.5}]
    (sent_region,) = [layer for layer in request["layers"] if layer["kind"] == "regional_guidance"]
    assert sent_region["region"] == {"prompt": region_prompt, "negative_prompt": "", "strength": 0.6}
    staged = wait_staged(app)
    (image_id,) = generation(server, item["generation_id"])["image_ids"]
    assert staged["items"][0]["image_id"] == image_id
    recall = server.get(f"/api/v1/images/{image_id}/recall").json()
    assert [(lo["model"], lo["weight"], lo["installed"]) for lo in recall["loras"]] == [(water, 0.5, True)], recall
    (recalled_region,) = recall["regions"]
    assert recalled_region["strength"] == 0.6 and recalled_region["available"] is True, recalled_region
    (recalled_control,) = recall["controls"]
    assert (recalled_control["model"], recalled_control["installed"], recalled_control["weight"]) == (
        "demo-controlnet",
        True,
        0.7,
    ), recalled_control

    # clear the LoRA list and delete the region and control layers
    for lora_id in (water, ink):
        lora_row(app, lora_id).locator('[data-testid="lora-remove"]').click()
    app.wait("() => !(window.__app.store.get('settings').loras || []).length")
    assert app.tid("lora-row").count() == 0
    for layer_id in (region["id"], control["id"]):
        layer_row(app, layer_id).click()
        app.click("layer-delete")
        app.wait("(id) => !window.__app.store.get(id)", layer_id)
    layers_before = {layer["id"] for layer in app.layers()}
    steps_before = app.js("() => window.__app.history.size")

    # open the result in the viewer; Recall parameters: the LoRA row comes back with its weight
    app.page.locator('[data-testid="board-row"][data-special="__all__"]').click()
    cell = app.page.locator(f'[data-testid="gallery-image"][data-image-id="{image_id}"]')
    cell.wait_for(state="visible", timeout=30_000)
    cell.click()
    app.tid("viewer").wait_for(state="visible")
    app.tid("viewer-recall-layers").wait_for(state="visible")
    # the details list the job's region (prompt, strength) and control
    app.page.locator('[data-testid="viewer"]', has_text=f'"{region_prompt}" 0.60').wait_for(timeout=10_000)
    app.page.locator('[data-testid="viewer"]', has_text="none 0.70").wait_for(timeout=10_000)
    app.shot("viewer")
    app.click("viewer-recall")
    app.wait("() => (window.__app.store.get('settings').loras || []).length === 1")
    settings = app.record("settings")
    assert settings["loras"] == [{"model": water, "name": "watercolour", "weight": 0.5, "enabled": True}]
    assert settings["prompt"] == "a quiet harbour"
    assert panel_rows(app) == [{"id": water, "weight": 0.5, "enabled": True, "fits": True}]

    assert app.js("() => window.__app.history.size") == steps_before, "the box size did not change: no undo step"

    # Recall layers: the region and control layers come back (settings, pixels) as one undo step, and the
    # box goes back where the image was made (moved away first, outside history)
    app.js("() => { const s = window.__app.store; s.apply({put: [{...s.get('bbox'), x: s.get('bbox').x + 40}]}, {history: false}); }")
    app.click("viewer-recall-layers")
    app.tid("viewer").wait_for(state="detached")
    app.wait("(n) => window.__app.store.layers().length === n + 2", len(layers_before))
    back, back_control = [layer for layer in app.layers() if layer["id"] not in layers_before]
    assert back["kind"] == "regional_guidance" and back_control["kind"] == "control"
    assert (back["prompt"], back["negative_prompt"], back["strength"]) == (region_prompt, "", 0.6)
    assert (back["name"], back["color"]) == (region["name"], app_region_color), "name and colour from the recall"
    assert back_control["control"] == control_settings, "control settings from the recall"
    assert back_control["name"] == control["name"]
    assert selected_layer(app) == back_control["id"], "the last recalled layer is the selected one"
    cx, cy, cpx = app.export_pixels(back_control["id"])
    assert (cx, cy) == control_px[:2] and np.array_equal(cpx[..., 3], control_px[2][..., 3])
    x, y, mask = app.export_pixels(back["id"])
    ox, oy, omask = original
    assert (x, y) == (ox, oy) and mask.shape == omask.shape, ((x, y, mask.shape), (ox, oy, omask.shape))
    assert np.array_equal(mask[..., 3], omask[..., 3]), "the recalled mask is the painted one"
    asset = image_rgba(server, recalled_region["image_id"])
    assert np.array_equal(mask, asset), "the layer holds the job's mask asset"
    assert app.js("() => window.__app.history.size") == steps_before + 1, "recall layers is one undo step"
    box = app.record("bbox")
    assert [box["x"], box["y"], box["width"], box["height"]] == recall["bbox"], "the box is back where the job ran"
    app.shot("recalled")
    app.page.locator('[data-testid="canvas-stage"]').focus()
    app.key("Control+z")
    app.wait("([a, b]) => !window.__app.store.get(a) && !window.__app.store.get(b)", [back["id"], back_control["id"]])
    app.key("Control+Shift+z")
    app.wait("([a, b]) => !!window.__app.store.get(a) && !!window.__app.store.get(b)", [back["id"], back_control["id"]])
    assert np.array_equal(app.export_pixels(back["id"])[2], mask)

    # a disabled row is kept too: add ink switched off, then reload; the list comes back as it was
    add_lora(app, ink)
    set_lora_weight(app, ink, -0.75)
    lora_row(app, ink).locator('[data-testid="lora-enabled"]').uncheck()
    expected = [
        {"id": water, "weight": 0.5, "enabled": True, "fits": True},
        {"id": ink, "weight": -0.75, "enabled": False, "fits": True},
    ]
    assert panel_rows(app) == expected
    canvas_id = app.js("() => window.__app.current.id")
    app.js("() => window.__app.save()")

    def saved_stack():
        doc = saved_document(server, canvas_id)
        rows = (doc.get("ui") or {}).get("loras") or []
        return doc if [r["model"] for r in rows] == [water, ink] and not rows[1]["enabled"] else None

    doc = poll(saved_stack, timeout=20, what="the LoRA stack saved with the canvas")
    assert doc["params"]["loras"] == [{"model": water, "weight": 0.5}], "a save's params hold only what a job sends"
    app.page.reload()
    app.wait_ready()
    app.wait("() => document.querySelectorAll('[data-testid=lora-row]').length === 2")
    assert panel_rows(app) == expected
    restored = app.record(back["id"])
    assert (restored["prompt"], restored["strength"]) == (region_prompt, 0.6)
    assert app.record(back_control["id"])["control"] == control_settings
    app.shot("after-reload")

    # the LoRA is uninstalled: the saved row is marked and not sent; a recall skips it with one warning
    assert requests.delete(f"{server.url}/api/v1/models/{water}", timeout=30).status_code == 200
    app.page.reload()
    app.wait_ready()
    app.wait(
        "(id) => document.querySelector(`[data-testid=lora-row][data-lora-id='${id}']`)?.dataset.fits === 'false'",
        water,
    )
    assert lora_row(app, water).locator('[data-testid="lora-misfit"]').inner_text().lower() == "not installed"
    app.shot("lora-uninstalled")
    cell = app.page.locator(f'[data-testid="gallery-image"][data-image-id="{image_id}"]')
    app.page.locator('[data-testid="board-row"][data-special="__all__"]').click()
    cell.wait_for(state="visible", timeout=30_000)
    cell.click()
    app.tid("viewer").wait_for(state="visible")
    app.click("viewer-recall")
    warning = app.page.locator('[data-testid="toast"][data-kind="warning"]')
    warning.wait_for(state="visible")
    assert warning.count() == 1 and "watercolour" in warning.inner_text(), warning.all_inner_texts()
    app.wait("() => !(window.__app.store.get('settings').loras || []).length")
    app.key("Escape")


def test_lora_of_another_family_is_marked_and_not_sent(app, server, loras, tmp_path_factory):
    """The main model changes to an SDXL one: the SD1.5 LoRA row stays in the list, marked, and the job
    goes without it (the server would refuse it); switching back makes it fit again."""
    from invoke_core.demo import build_sdxl_demo

    ink = loras["ink"]
    xl_id = install(server, build_sdxl_demo(tmp_path_factory.mktemp("xl") / "tiny-sdxl"), "Tiny SDXL")
    models = {m["id"]: m for m in server.get("/api/v1/models").json()}
    assert models[xl_id]["family"] != models[ink]["family"]
    app.page.locator(f'[data-testid="model-select"] option[value="{xl_id}"]').wait_for(state="attached")
    app.tid("model-select").select_option("demo")
    set_up_job(app, "a lighthouse", steps=2)
    add_lora(app, ink)
    assert panel_rows(app) == [{"id": ink, "weight": 1, "enabled": True, "fits": True}]

    app.tid("model-select").select_option(xl_id)
    app.wait(
        "(id) => document.querySelector(`[data-testid=lora-row][data-lora-id='${id}']`).dataset.fits === 'false'", ink
    )
    assert panel_rows(app) == [{"id": ink, "weight": 1, "enabled": True, "fits": False}]
    badge = lora_row(app, ink).locator('[data-testid="lora-misfit"]')
    assert badge.inner_text().lower() == models[ink]["family"].lower()
    assert "not sent" in lora_row(app, ink).get_attribute("title")
    assert app.tid("lora-add").is_disabled()
    assert "sdxl" in app.tid("lora-add").locator("option").first.inner_text()
    app.shot("lora-misfit")

    known = queue_ids(server)
    with app.page.expect_request("**/api/v1/canvas/jobs") as sent:
        app.click("invoke")
    params = sent.value.post_data_json["document"]["params"]
    assert params["model"] == xl_id and "loras" not in params, params
    warning = app.page.locator('[data-testid="toast"][data-kind="warning"]')
    warning.wait_for(state="visible")
    assert "ink" in warning.inner_text() and "Not sent" in warning.inner_text()
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=120)[0]
    assert done["status"] == "completed", (done["error_type"], done["error_message"])

    app.tid("model-select").select_option("demo")
    app.wait(
        "(id) => document.querySelector(`[data-testid=lora-row][data-lora-id='${id}']`).dataset.fits === 'true'", ink
    )
    assert app.tid("lora-misfit").count() == 0
