"""A reference layer on an SD 1.5 model in headless Chromium: its IP-Adapter, weight and step range in the Layers
panel go into the job and its metadata; on FLUX.2 (whose models take the picture themselves) those fields go
and settings it cannot take can be reset."""

from __future__ import annotations

import browser_helpers
import numpy as np
from browser_helpers import add_layer, last_item, png_bytes, queue_ids, set_up_job, wait_staged

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def choose_model(app, model_id: str) -> None:
    app.tid("model-select").select_option(model_id)
    app.wait("(id) => window.__app.store.get('settings').model === id", model_id)


def load_picture(app, tmp_path, layer_id: str, seed: int, shape: tuple[int, int]) -> None:
    """Load a random picture of `shape` (h, w) into the reference layer through its file field."""
    picture = np.zeros((*shape, 4), np.uint8)
    picture[..., :3] = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    picture[..., 3] = 255
    path = tmp_path / f"picture-{seed}.png"
    path.write_bytes(png_bytes(picture))
    app.tid("reference-image-file").set_input_files(str(path))
    app.wait("(id) => !!window.__app.canvas.pixels.exportLayer(id)", layer_id, timeout=10_000)
    app.settle()


def invoke_for_references(app, server, timeout: int = 90) -> list[dict]:
    """Invoke, wait for the job and its staged image; that image's metadata `references`."""
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=timeout)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    staged = wait_staged(app)
    return server.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()["references"]


def test_a_reference_layer_with_an_ip_adapter_steers_an_sd15_job(app, server, tmp_path):
    choose_model(app, "demo")
    assert app.tid("layer-add-reference").is_enabled()
    set_up_job(app, "a lighthouse at dusk", steps=4)
    layer = add_layer(app, "reference")
    assert layer["reference"] == {"model": None, "weight": 1, "begin": 0, "end": 1}
    assert "IP-Adapter" in app.tid("reference-hint").inner_text()
    options = app.js("() => [...document.querySelectorAll('[data-testid=reference-model] option')].map((o) => o.value)")
    assert options == ["", "demo-ip-adapter"], options
    app.tid("reference-model").select_option("demo-ip-adapter")
    app.wait("(id) => window.__app.store.get(id).reference.model === 'demo-ip-adapter'", layer["id"])
    for testid, value in (("reference-weight", "0.5"), ("reference-begin", "0.25")):
        app.tid(testid).fill(value)
        app.tid(testid).dispatch_event("change")
    app.wait("(id) => window.__app.store.get(id).reference.weight === 0.5 && window.__app.store.get(id).reference.begin === 0.25", layer["id"])
    load_picture(app, tmp_path, layer["id"], 3, (96, 64))
    (ref,) = invoke_for_references(app, server, 90)
    assert (ref["layer_id"], ref["weight"], ref["begin"], ref["end"], ref["model"]["id"]) == (layer["id"], 0.5, 0.25, 1.0, "demo-ip-adapter"), ref
    app.shot("sd15-reference")
    # FLUX.2 takes the picture itself: no adapter, weight or range; what it cannot take can be reset
    app.js("() => document.activeElement && document.activeElement.blur()")  # (as a click on the model list does)
    choose_model(app, "demo-flux2")
    app.wait("() => !document.querySelector('[data-testid=reference-model]')")
    assert "reference image" in app.tid("reference-hint").inner_text()
    app.click("reference-reset")
    app.wait("(id) => JSON.stringify(window.__app.store.get(id).reference) === JSON.stringify({model: null, weight: 1, begin: 0, end: 1})", layer["id"])
    app.wait("() => !document.querySelector('[data-testid=reference-reset]')")
    choose_model(app, "demo")


def test_a_flux1_reference_layer_runs_through_flux_redux_with_a_weight_and_no_step_range(app, server, tmp_path):
    choose_model(app, "demo")
    set_up_job(app, "a lighthouse at dusk", steps=2)
    layer = add_layer(app, "reference")
    app.tid("reference-begin").fill("0.25")
    app.tid("reference-begin").dispatch_event("change")
    app.wait("(id) => window.__app.store.get(id).reference.begin === 0.25", layer["id"])
    app.js("() => document.activeElement && document.activeElement.blur()")
    choose_model(app, "demo-flux")
    assert app.tid("layer-add-reference").is_enabled()
    app.wait("() => !!document.querySelector('[data-testid=reference-model]')")
    assert "FLUX Redux" in app.tid("reference-hint").inner_text()
    options = app.js("() => [...document.querySelectorAll('[data-testid=reference-model] option')].map((o) => o.value)")
    assert options == ["", "demo-flux-redux", "demo-flux-ip-adapter"], options
    assert app.js("() => !document.querySelector('[data-testid=reference-begin]') && !document.querySelector('[data-testid=reference-end]')")
    app.click("reference-reset")  # the step range it cannot take
    app.wait("(id) => window.__app.store.get(id).reference.begin === 0 && window.__app.store.get(id).reference.end === 1", layer["id"])
    app.tid("reference-weight").fill("0.5")
    app.tid("reference-weight").dispatch_event("change")
    app.wait("(id) => window.__app.store.get(id).reference.weight === 0.5", layer["id"])
    load_picture(app, tmp_path, layer["id"], 4, (96, 64))
    (ref,) = invoke_for_references(app, server, 90)
    assert (ref["layer_id"], ref["weight"], ref["begin"], ref["end"], ref["model"]["id"]) == (layer["id"], 0.5, 0.0, 1.0, "demo-flux-redux"), ref
    app.shot("flux1-redux-reference")
    choose_model(app, "demo")


def test_edit_models_take_a_reference_layer_as_a_picture_and_qwen_image_disables_it(app, server, tmp_path):
    choose_model(app, "demo-qwen")
    app.wait("() => document.querySelector('[data-testid=layer-add-reference]').disabled")
    assert "takes no reference images" in app.tid("layer-add-reference").get_attribute("title")
    choose_model(app, "demo-qwen-edit")
    app.wait("() => !document.querySelector('[data-testid=layer-add-reference]').disabled")
    set_up_job(app, "put it on a beach", steps=2)
    layer = add_layer(app, "reference")
    assert "edit model edits from" in app.tid("reference-hint").inner_text()
    assert app.js("() => !document.querySelector('[data-testid=reference-model]') && !document.querySelector('[data-testid=reference-weight]')")
    load_picture(app, tmp_path, layer["id"], 5, (64, 64))
    app.wait("() => document.querySelector('[data-testid=mode-badge]').dataset.mode === 'edit'")  # it edits the reference
    (ref,) = invoke_for_references(app, server, 120)
    assert ref["layer_id"] == layer["id"] and "model" not in ref, ref
    app.shot("qwen-edit-reference")
    choose_model(app, "demo-flux-kontext")
    app.wait("() => !document.querySelector('[data-testid=layer-add-reference]').disabled")
    app.wait("() => document.querySelector('[data-testid=reference-hint]').innerText.includes('edit model edits from')")
    choose_model(app, "demo")
