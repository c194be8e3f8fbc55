"""A FLUX.1 reference layer in headless Chromium chooses between the kinds its model takes (FLUX Redux, a FLUX
IP-Adapter): one select lists both (grouped by kind), the fields follow the kind in effect (Default: FLUX Redux, weight only; an
IP-Adapter: weight and step range), and the chosen adapter, weight and range go into the job and its metadata."""

from __future__ import annotations

import browser_helpers
from browser_helpers import add_layer, set_up_job
from test_browser_reference import choose_model, invoke_for_references, load_picture

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app

NO_RANGE = "() => !document.querySelector('[data-testid=reference-begin]') && !document.querySelector('[data-testid=reference-end]')"
RANGE = "() => !!document.querySelector('[data-testid=reference-begin]') && !!document.querySelector('[data-testid=reference-end]')"


def test_a_flux1_reference_layer_chooses_between_flux_redux_and_an_ip_adapter(app, server, tmp_path):
    flux = next(m for m in server.get("/api/v1/models").json() if m["id"] == "demo-flux")
    assert flux["reference_kinds"] == ["redux", "ip_adapter"], flux["reference_kinds"]
    choose_model(app, "demo-flux")
    set_up_job(app, "a lighthouse at dusk", steps=2)
    layer = add_layer(app, "reference")
    options = app.js("() => [...document.querySelectorAll('[data-testid=reference-model] option')].map((o) => [o.value, o.textContent])")
    assert [value for value, _ in options] == ["", "demo-flux-redux", "demo-flux-ip-adapter"], options
    assert options[0][1] == "Default (FLUX Redux)", options
    groups = app.js("() => [...document.querySelectorAll('[data-testid=reference-model] optgroup')].map((g) => [g.label, [...g.children].map((o) => o.value)])")
    assert groups == [["FLUX Redux", ["demo-flux-redux"]], ["IP-Adapter", ["demo-flux-ip-adapter"]]], groups
    # Default: the demo FLUX Redux, weight only
    assert "FLUX Redux" in app.tid("reference-hint").inner_text()
    assert app.tid("reference-weight").is_visible()
    assert app.js(NO_RANGE)
    # an IP-Adapter: the form follows it (weight, begin, end), and keeps the select focused
    app.tid("reference-model").select_option("demo-flux-ip-adapter")
    app.wait("(id) => window.__app.store.get(id).reference.model === 'demo-flux-ip-adapter'", layer["id"])
    app.wait(RANGE)
    assert "IP-Adapter" in app.tid("reference-hint").inner_text()
    assert app.js("() => document.activeElement === document.querySelector('[data-testid=reference-model]')")
    for testid, value in (("reference-weight", "0.5"), ("reference-begin", "0.25")):
        app.tid(testid).fill(value)
        app.tid(testid).dispatch_event("change")
    app.wait("(id) => window.__app.store.get(id).reference.weight === 0.5 && window.__app.store.get(id).reference.begin === 0.25", layer["id"])
    app.js("() => document.activeElement && document.activeElement.blur()")
    load_picture(app, tmp_path, layer["id"], 6, (96, 64))
    app.shot("flux1-ip-adapter-reference")
    (ref,) = invoke_for_references(app, server, 90)
    assert (ref["layer_id"], ref["weight"], ref["begin"], ref["end"], ref["model"]["id"]) == (layer["id"], 0.5, 0.25, 1.0, "demo-flux-ip-adapter"), ref
    # back to FLUX Redux: weight only again, and the step range it cannot take gets a reset
    app.tid("reference-model").select_option("demo-flux-redux")
    app.wait(NO_RANGE)
    app.js("() => document.activeElement && document.activeElement.blur()")
    app.click("reference-reset")
    app.wait("(id) => window.__app.store.get(id).reference.begin === 0 && window.__app.store.get(id).reference.end === 1", layer["id"])
    choose_model(app, "demo")
