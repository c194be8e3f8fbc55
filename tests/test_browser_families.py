"""Model families on the canvas, in headless Chromium: choosing a model of another family brings its
defaults and schedulers, and a job runs through the server to a staged result."""

from __future__ import annotations

import browser_helpers
import numpy as np
import pytest
from browser_helpers import BOX, fill_rect, last_item, queue_ids, set_up_job, wait_staged

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def choose_model(app, model_id: str) -> None:
    app.tid("model-select").select_option(model_id)
    app.wait("(id) => window.__app.store.get('settings').model === id", model_id)


def test_an_sd3_model_brings_its_defaults_disables_what_it_lacks_and_runs(app, server):
    choose_model(app, "demo-sd3")
    s = app.record("settings")
    assert (s["steps"], s["cfg_scale"], s["scheduler"]) == (28, 4.5, "euler"), "the family's defaults"
    options = app.js("() => [...document.querySelectorAll('[data-testid=scheduler] option')].map((o) => o.value)")
    assert options == ["euler", "heun"], options
    # SD 3.5 has regional prompts and ControlNet: nothing the canvas offers is disabled (its LoRA picker
    # lists only SD 3.5 LoRAs; families.test.js covers a family that lacks a feature)
    for testid in ("layer-add-regional_guidance", "layer-add-control", "negative-prompt"):
        assert app.tid(testid).is_enabled(), testid
    # its CFG scale is classifier-free guidance already: the gaps are FLUX.1's true CFG and FLUX.2's
    # reference images
    gaps = app.js("() => [...document.querySelectorAll('[data-family-gap]')].map((e) => e.dataset.testid)")
    assert sorted(gaps) == ["layer-add-reference", "true-cfg"], gaps

    set_up_job(app, "a lighthouse at dusk", steps=3)
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    wait_staged(app)

    # back to an SD1.5 model: its family's defaults and everything enabled again
    choose_model(app, "demo")
    s = app.record("settings")
    assert (s["steps"], s["cfg_scale"]) == (30, 7.5)
    assert "dpmpp_2m" in app.js("() => [...document.querySelectorAll('[data-testid=scheduler] option')].map((o) => o.value)")


def test_a_flux_model_offers_true_cfg_with_the_negative_prompt_and_runs(app, server):
    choose_model(app, "demo-flux")
    s = app.record("settings")
    assert (s["steps"], s["cfg_scale"], s["scheduler"]) == (28, 3.5, "euler"), "the family's defaults"
    options = app.js("() => [...document.querySelectorAll('[data-testid=scheduler] option')].map((o) => o.value)")
    assert options == ["euler"], options
    assert app.js("() => document.querySelector('[data-testid=cfg]').closest('label').textContent").startswith("Guidance")
    for testid in ("layer-add-regional_guidance", "layer-add-control", "negative-prompt", "true-cfg"):
        assert app.tid(testid).is_enabled(), testid
    assert "True CFG above 1" in (app.tid("negative-prompt").get_attribute("placeholder") or "")
    app.tid("negative-prompt").fill("fog")
    app.tid("true-cfg").fill("2.5")
    app.tid("true-cfg").dispatch_event("change")
    app.wait("() => window.__app.store.get('settings').true_cfg_scale === 2.5")
    app.shot("flux-chosen")

    set_up_job(app, "a lighthouse at dusk", steps=3)
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    (image_id,) = server.get(f"/api/v1/history/{item['generation_id']}").json()["image_ids"]
    meta = server.get(f"/api/v1/images/{image_id}/metadata").json()
    assert (meta["true_cfg_scale"], meta["negative_prompt"], meta["cfg_scale"]) == (2.5, "fog", 3.5)
    wait_staged(app)
    app.shot("flux-staged")
    # schnell, a model with defaults of its own: 4 steps; back to dev: 28
    choose_model(app, "demo-flux-schnell")
    assert app.record("settings")["steps"] == 4
    choose_model(app, "demo-flux")
    assert app.record("settings")["steps"] == 28
    choose_model(app, "demo")
    assert app.tid("negative-prompt").is_enabled() and not app.tid("true-cfg").is_enabled()
    assert "have no true CFG" in (app.tid("true-cfg").get_attribute("title") or "")
    assert app.record("settings")["true_cfg_scale"] == 1, "off on a family without it"
    assert app.js("() => document.querySelector('[data-testid=cfg]').closest('label').textContent").startswith("CFG scale")


def badge(app) -> tuple[str, str]:
    return app.tid("mode-badge").get_attribute("data-mode"), app.tid("mode-badge").inner_text().strip()


def test_a_kontext_model_shows_edit_and_edits_the_box(app, server):
    choose_model(app, "demo-flux-kontext")
    set_up_job(app, "make the sky red", steps=2)
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")  # the reference: the whole box painted
    app.wait("() => document.querySelector('[data-testid=mode-badge]')?.dataset.mode === 'edit'", timeout=10_000)
    assert badge(app) == ("edit", "Edit")
    assert "reference" in app.tid("mode-badge").get_attribute("title")
    app.shot("kontext-edit")
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    wait_staged(app)
    # another model: the canvas's own mode again
    choose_model(app, "demo-flux")
    app.wait("() => document.querySelector('[data-testid=mode-badge]')?.dataset.mode === 'img2img'", timeout=10_000)


def test_a_qwen_edit_model_asks_for_a_picture_then_edits_it(app, server):
    choose_model(app, "demo-qwen-edit")
    set_up_job(app, "make the sky red", steps=2)
    app.wait("() => document.querySelector('[data-testid=mode-badge]')?.dataset.mode === 'edit-empty'", timeout=10_000)
    assert badge(app) == ("edit-empty", "Edit: empty box")
    assert "paint or place a picture under it" in app.tid("mode-badge").get_attribute("title")
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")
    app.wait("() => document.querySelector('[data-testid=mode-badge]')?.dataset.mode === 'edit'", timeout=10_000)
    app.shot("qwen-edit")
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    wait_staged(app)


def test_a_union_controlnet_asks_what_the_control_image_shows(app, server, tmp_path):
    from pathlib import Path

    from browser_helpers import add_layer, brush

    from invoke_core.families.flux_demo import build_flux_controlnet_demo
    from invoke_core.model_install import install_model
    from invoke_core.model_records import ModelRegistry

    registry = ModelRegistry(server.root)
    union = install_model(registry, str(build_flux_controlnet_demo(tmp_path / "union", Path(registry.get("demo-flux").path), union=True)), name="Tiny Union").id
    try:
        app.open()  # the new model listed
        choose_model(app, "demo-flux")
        set_up_job(app, "a lighthouse at dusk", steps=2)
        control = add_layer(app, "control")
        assert app.page.locator('[data-testid="control-type"]').count() == 0, "a one-kind ControlNet: no control type"
        app.tid("control-model").select_option(union)
        app.wait("([id, m]) => window.__app.store.get(id).control.model === m", [control["id"], union])
        types = app.js("() => [...document.querySelectorAll('[data-testid=control-type] option')].map((o) => o.value)")
        assert types[:4] == ["", "canny", "tile", "depth"], types
        app.tid("control-type").select_option("depth")
        app.wait("(id) => window.__app.store.get(id).control.control_type === 'depth'", control["id"])
        brush(app, [(20, 60), (110, 60)], size=12)
        app.shot("union-control-type")
        known = queue_ids(server)
        app.click("invoke")
        item = last_item(server, known)
        done = server.wait_items([item["id"]], timeout=90)[0]
        assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
        (image_id,) = server.get(f"/api/v1/history/{item['generation_id']}").json()["image_ids"]
        meta = server.get(f"/api/v1/images/{image_id}/metadata").json()
        assert meta["controls"][0]["control_type"] == "depth" and meta["controls"][0]["model"]["id"] == union
        wait_staged(app)
        # back to a one-kind ControlNet: the type goes with the model
        app.tid("control-model").select_option("demo-flux-controlnet")
        app.wait("(id) => window.__app.store.get(id).control.control_type === null", control["id"])
    finally:
        registry.remove(union)


# a model of each newer family: its defaults, what it lacks in its own words (HiDream and Chroma inpaint on
# the generic flow-matching path)
INPAINTS = {
    "demo-hidream": ((16, 1.0), {"layer-add-regional_guidance": "HiDream-I1 models have no regional prompts",
                                 "layer-add-control": "HiDream-I1 models have no ControlNet"}),
    "demo-chroma": ((40, 3.0), {"layer-add-control": "Chroma models have no ControlNet"}),
    "demo-zimage": ((9, 0.0), {"layer-add-regional_guidance": "Z-Image models have no regional prompts"}),
    "demo-qwen": ((50, 4.0), {"layer-add-regional_guidance": "Qwen-Image models have no regional prompts"}),
    "demo-flux2": ((50, 4.0), {"layer-add-control": "FLUX.2 [klein] models have no ControlNet"}),
    # its inpaint on the generic flow path too; guidance-distilled: no negative prompt
    "demo-flux2-dev": ((50, 4.0), {"layer-add-control": "FLUX.2 [dev] models have no ControlNet",
                                   "negative-prompt": "FLUX.2 [dev] models have no negative prompts"}),
}


@pytest.mark.parametrize("model", sorted(INPAINTS))
def test_a_family_disables_what_it_lacks_in_its_words_and_inpaints(app, server, model):
    from browser_helpers import add_layer, brush, image_rgba, selected_layer

    (steps, cfg), gaps = INPAINTS[model]
    choose_model(app, model)
    s = app.record("settings")
    assert (s["steps"], s["cfg_scale"], s["scheduler"]) == (steps, cfg, "euler"), "the model's defaults"
    for testid in ("layer-add-regional_guidance", "layer-add-control", "negative-prompt"):
        assert app.tid(testid).is_enabled() == (testid not in gaps), testid
        if testid in gaps:
            assert app.tid(testid).get_attribute("title") == gaps[testid], testid

    set_up_job(app, "a lighthouse at dusk", steps=2)
    raster = selected_layer(app)
    fill_rect(app, -16, -16, BOX + 16, BOX + 16, color="#3a7bd5")
    painted = app.export_pixels(raster)
    add_layer(app, "inpaint_mask")
    brush(app, [(32, 40), (64, 64), (96, 88)], size=24)
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    staged = wait_staged(app)
    image_id = staged["items"][0]["image_id"]
    meta = server.get(f"/api/v1/images/{image_id}/metadata").json()
    assert (meta["mode"], meta["model"]["id"]) == ("inpaint", model), meta
    result = image_rgba(server, image_id)
    x, y, px = painted
    blue = px[-y : -y + BOX, -x : -x + BOX]  # the canvas under the box (the layer starts at x, y <= 0)
    corner = (slice(0, 16), slice(0, 16))  # far from the stroke: kept byte for byte
    assert np.array_equal(result[corner][..., :3], blue[corner][..., :3]), "outside the mask: the canvas's pixels"
    assert not np.array_equal(result[56:72, 56:72][..., :3], blue[56:72, 56:72][..., :3]), "under the stroke: repainted"
    app.shot(f"{model}-staged")


def test_a_reference_layer_steers_a_flux2_job_and_other_families_disable_it(app, server, tmp_path):
    from browser_helpers import add_layer, png_bytes, selected_layer

    choose_model(app, "demo-sd3")
    assert not app.tid("layer-add-reference").is_enabled()
    assert app.tid("layer-add-reference").get_attribute("title") == "Stable Diffusion 3.5 models have no reference images"
    choose_model(app, "demo-flux2")
    assert app.tid("layer-add-reference").is_enabled()
    set_up_job(app, "a lighthouse at dusk", steps=2)
    reference = add_layer(app, "reference")
    assert "reference image" in app.tid("reference-hint").inner_text()
    picture = np.zeros((240, 160, 4), np.uint8)
    picture[..., :3] = np.random.default_rng(2).integers(0, 256, (240, 160, 3), dtype=np.uint8)
    picture[..., 3] = 255
    path = tmp_path / "mood.png"
    path.write_bytes(png_bytes(picture))
    app.tid("reference-image-file").set_input_files(str(path))
    app.wait("(id) => !!window.__app.canvas.pixels.exportLayer(id)", reference["id"], timeout=10_000)
    x, y, px = app.export_pixels(reference["id"])
    b = app.record("bbox")
    # its own shape (no taller than the box), beside the box
    assert (x, y, px.shape[1], px.shape[0]) == (b["x"] + b["width"] + 16, b["y"], round(160 * BOX / 240), BOX)
    app.settle()
    app.shot("flux2-reference")
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    staged = wait_staged(app)
    meta = server.get(f"/api/v1/images/{staged['items'][0]['image_id']}/metadata").json()
    assert meta["mode"] == "txt2img" and [r["layer_id"] for r in meta["references"]] == [reference["id"]], meta
    assert selected_layer(app) == reference["id"]
    choose_model(app, "demo")
