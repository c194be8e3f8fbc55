"""The memory dialog in headless Chromium: after a job it shows the model loaded, with its size; "Keep
loaded" on another model loads it without a job, as the server's cache says."""

from __future__ import annotations

import time

import browser_helpers
from browser_helpers import last_item, queue_ids, set_up_job, wait_staged

server, browser, app = browser_helpers.server, browser_helpers.browser, browser_helpers.app


def cache(server) -> dict:
    return server.get("/api/v1/models/cache").json()


def test_the_memory_dialog_shows_what_is_loaded_and_keeps_a_model_loaded(app, server):
    set_up_job(app, "a lighthouse at dusk", steps=2)
    known = queue_ids(server)
    app.click("invoke")
    done = server.wait_items([last_item(server, known)["id"]], timeout=90)[0]
    assert done["status"] == "completed", done
    wait_staged(app)
    loaded_before = set(cache(server)["loaded"])

    app.click("memory-button")
    app.wait("() => document.querySelectorAll('[data-testid=memory-row]').length > 3")
    model = "demo" if "demo" in loaded_before else sorted(loaded_before)[0]
    row = app.page.locator(f'[data-testid="memory-row"][data-model="{model}"]')
    assert row.get_attribute("data-loaded") == "true", model
    assert " in RAM" in row.inner_text() and "B" in row.inner_text()
    assert "RAM" in app.tid("memory-ram").inner_text()
    app.shot("memory-dialog")

    target = "demo-inpaint" if "demo-inpaint" not in loaded_before else "demo-flux"
    app.page.locator(f'[data-testid="memory-keep"][data-model="{target}"]').check()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and target not in cache(server)["loaded"]:
        time.sleep(0.25)
    assert target in cache(server)["loaded"], "kept loaded: loaded without a job"
    listed = {m["id"]: m["keep_loaded"] for m in server.get("/api/v1/models").json()}
    assert listed[target] is True
    app.wait(f"() => document.querySelector('[data-testid=memory-row][data-model=\"{target}\"]')?.dataset.loaded === 'true'", timeout=10_000)
    app.shot("memory-kept")
    app.page.locator(f'[data-testid="memory-keep"][data-model="{target}"]').uncheck()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {m["id"]: m["keep_loaded"] for m in server.get("/api/v1/models").json()}[target]:
        time.sleep(0.2)
    # the weight storage of a model: nf4 and int8 offered but disabled on this CPU server (their reason shown), fp8 taken
    options = app.page.locator('[data-testid="memory-weights"][data-model="demo-flux"] option')
    offered = options.evaluate_all("os => os.map(o => [o.value, o.disabled, o.title])")
    assert [(v, d) for v, d, _ in offered] == [("native", False), ("fp8", False), ("nf4", True), ("int8", True)], offered
    assert "CUDA" in offered[2][2]
    app.page.locator('[data-testid="memory-weights"][data-model="demo-flux"]').select_option("fp8")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {m["id"]: m["weights"] for m in server.get("/api/v1/models").json()}["demo-flux"] != "fp8":
        time.sleep(0.2)
    assert {m["id"]: m["weights"] for m in server.get("/api/v1/models").json()}["demo-flux"] == "fp8"
    app.shot("memory-fp8")
    app.click("memory-close")
    assert app.page.locator('[data-testid="memory-dialog"]').count() == 0


def test_models_from_a_folder_are_added_from_the_memory_dialog(app, server, tmp_path):
    import shutil

    from invoke_core.demo import build_sd15_demo

    folder = tmp_path / "ComfyUI" / "models"
    shutil.copytree(build_sd15_demo(tmp_path / "build"), folder / "diffusers" / "harbourDream")
    (folder / "checkpoints" / "old.ckpt").parent.mkdir(parents=True)
    (folder / "checkpoints" / "old.ckpt").write_bytes(b"not opened")
    app.click("memory-button")
    app.wait("() => !!document.querySelector('[data-testid=scan-path]')")
    app.tid("scan-path").fill(str(folder))
    app.click("scan-run")
    app.wait("() => /found and added/.test(document.querySelector('[data-testid=scan-note]')?.textContent || '')", timeout=60_000)
    note = app.tid("scan-note").inner_text()
    assert note.startswith("1 found and added") and "1 skipped" in note, note
    assert app.page.locator('[data-testid="memory-row"][data-model="harbourdream"]').count() == 1
    app.shot("models-scanned")
    app.click("memory-close")
    # the Generate panel's model list has it too (the scan's event reloads the models)
    app.wait("() => [...document.querySelectorAll('option')].some((o) => o.value === 'harbourdream')", timeout=20_000)
