"""Model families on the canvas, in headless Chromium: choosing a model of another family brings its
defaults and schedulers, and a job runs through the server to a staged result."""

from __future__ import annotations

import browser_helpers
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
    assert app.page.locator("[data-family-gap]").count() == 0

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


def test_a_flux_model_disables_the_negative_prompt_saying_why_and_runs(app, server):
    choose_model(app, "demo-flux")
    s = app.record("settings")
    assert (s["steps"], s["cfg_scale"], s["scheduler"]) == (28, 3.5, "euler"), "the family's defaults"
    options = app.js("() => [...document.querySelectorAll('[data-testid=scheduler] option')].map((o) => o.value)")
    assert options == ["euler"], options
    assert app.js("() => document.querySelector('[data-testid=cfg]').closest('label').textContent").startswith("Guidance")
    negative = app.tid("negative-prompt")
    assert not negative.is_enabled()
    assert "FLUX.1 models have no negative prompt" in (negative.get_attribute("title") or ""), negative.get_attribute("title")
    for testid in ("layer-add-regional_guidance", "layer-add-control"):
        assert app.tid(testid).is_enabled(), testid
    app.shot("flux-chosen")

    set_up_job(app, "a lighthouse at dusk", steps=3)
    known = queue_ids(server)
    app.click("invoke")
    item = last_item(server, known)
    done = server.wait_items([item["id"]], timeout=90)[0]
    assert done["status"] == "completed", (done.get("error_type"), done.get("error_message"))
    wait_staged(app)
    app.shot("flux-staged")
    # schnell, a model with defaults of its own: 4 steps; back to dev: 28
    choose_model(app, "demo-flux-schnell")
    assert app.record("settings")["steps"] == 4
    choose_model(app, "demo-flux")
    assert app.record("settings")["steps"] == 28
    choose_model(app, "demo")
    assert app.tid("negative-prompt").is_enabled()
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
