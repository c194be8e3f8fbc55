"""The model cache as components: a component two installed models ship is loaded once and shared, a
job pins what it uses, over a budget the least recently used unpinned components go first."""

from __future__ import annotations

import numpy as np
import pytest
from family_jobs import Jobs, run1

from invoke_core.engine import Engine


@pytest.fixture()
def two_fluxes(tmp_path):
    """demo-flux and a FLUX.1 schnell built the same way: the same CLIP, T5 and VAE files, another transformer."""
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    engine.resolve_model("demo-flux")  # built
    schnell = install_model(engine.registry, str(build_flux_demo(tmp_path / "schnell", schnell=True)), name="tiny schnell")
    return engine, schnell


def job(model: str, **kw):
    return Jobs(model, cfg_scale=3.5).doc(size=32, steps=2, **kw)


def test_two_flux_models_sharing_their_encoders_load_them_once(two_fluxes):
    engine, schnell = two_fluxes
    dev = run1(engine, job("demo-flux"))[0]
    first = engine.cache.stats()
    assert first.loads == 1 and first.component_loads == 4, "CLIP, T5, transformer, VAE"
    told = []
    engine.cache.on_load = lambda *event: told.append(event)
    run1(engine, job(schnell.id))
    stats = engine.cache.stats()
    (_, started, _, _), (model_id, finished, seconds, parts) = told
    assert (model_id, started, finished) == (schnell.id, "started", "finished") and seconds > 0
    assert {p["name"]: p["shared"] for p in parts} == {"text_encoder": True, "text_encoder_2": True, "transformer": False, "vae": True}
    assert all(p["bytes"] > 0 for p in parts), "the model_load event says what was read and its size"
    loaded = engine.cache.get(schnell, engine.device)
    assert loaded.loaded == ("transformer",), "the second model's first job reads only what differs"
    assert stats.component_loads == 5 and stats.loads == 2
    shared = {c.name: c.models for c in stats.components if len(c.models) == 2}
    assert set(shared) == {"text_encoder", "text_encoder_2", "vae"}, "one copy each, used by both"
    assert stats.ram_used < first.ram_used * 2, "not two copies"
    dev_pipe = engine.cache.get(engine.resolve_model("demo-flux"), engine.device).model
    assert dev_pipe.text_encoder_2 is loaded.model.text_encoder_2
    assert np.array_equal(run1(engine, job("demo-flux"))[0].image, dev.image), "sharing changes no pixel"


def test_over_the_ram_budget_the_least_recently_used_go_first(two_fluxes):
    engine, schnell = two_fluxes
    run1(engine, job("demo"))
    run1(engine, job("demo-flux"))
    flux_bytes = engine.cache.stats().ram_used - engine.cache.get(engine.resolve_model("demo"), engine.device).size_bytes
    # room for one of them and schnell's own transformer, not for all three
    run1(engine, job("demo"))  # demo-flux is now the least recently used
    engine.cache.ram_budget = flux_bytes + 1
    run1(engine, job(schnell.id))
    stats = engine.cache.stats()
    assert "demo" not in stats.loaded and schnell.id in stats.loaded, stats.loaded
    assert stats.evictions >= 1 and stats.ram_used <= engine.cache.ram_budget


def test_a_pinned_component_is_never_evicted_even_over_budget(two_fluxes):
    engine, schnell = two_fluxes
    engine.cache.ram_budget = 1  # nothing fits
    with engine.cache.job():
        engine.cache.get(engine.resolve_model("demo-flux"), engine.device)
        engine.cache.get(schnell, engine.device)  # an insertion, with demo-flux's components pinned
        stats = engine.cache.stats()
        assert set(stats.loaded) == {"demo-flux", schnell.id} and all(c.pinned for c in stats.components)
        assert stats.evictions == 0 and stats.ram_used > engine.cache.ram_budget
    assert not any(c.pinned for c in engine.cache.stats().components), "unpinned when the job ends"
    run1(engine, job("demo"))  # the next insertion evicts them
    stats = engine.cache.stats()
    assert stats.loaded == ("demo",) and {m for c in stats.components for m in c.models} == {"demo"}


def test_a_job_pins_what_it_uses_and_runs_over_budget(two_fluxes):
    engine, _schnell = two_fluxes
    engine.cache.ram_budget = 1
    seen = []

    def during(progress):
        seen.append([c.pinned for c in engine.cache.stats().components])

    result = run1(engine, job("demo-flux"), on_progress=during)[0]
    assert result.image.shape == (32, 32, 3) and seen and all(all(p) for p in seen)


def test_the_api_shows_the_components(tmp_path):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu"})
    try:
        client = app.test_client()
        body = {"document": {"bbox": {"x": 0, "y": 0, "width": 32, "height": 32}, "layers": [], "params": {"prompt": "p", "steps": 2}}}
        r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
        assert r.status_code == 201, r.json
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cache = client.get("/api/v1/models/cache").json
            if cache["loaded"]:
                break
            time.sleep(0.2)
        assert cache["loaded"] == ["demo"] and cache["ram_budget"] > 0
        names = sorted(c["name"] for c in cache["components"])
        assert names == ["text_encoder", "unet", "vae"], names
        assert all(c["tier"] == "ram" and c["bytes"] > 0 and c["models"] == ["demo"] for c in cache["components"])
    finally:
        shutdown(app)


def test_a_resident_model_outlives_the_others_and_its_next_job_loads_nothing(two_fluxes):
    engine, schnell = two_fluxes
    engine.cache.resident = {"demo-flux"}
    run1(engine, job("demo-flux"))
    run1(engine, job("demo"))
    engine.cache.ram_budget = engine.cache.stats().ram_used - 1  # one of the two has to go
    run1(engine, job(schnell.id))  # newer than demo-flux; demo is least recently used
    stats = engine.cache.stats()
    assert "demo-flux" in stats.loaded and "demo" not in stats.loaded, stats.loaded
    loads = stats.loads
    run1(engine, job("demo-flux"))
    run1(engine, job(schnell.id))  # switching between the kept ones: nothing loaded
    assert engine.cache.stats().loads == loads


def test_keep_loaded_through_the_api_loads_at_start_and_is_listed(tmp_path):
    import time

    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu"})
    try:
        client = app.test_client()
        origin = {"Origin": "http://localhost"}
        r = client.patch("/api/v1/models/demo-inpaint", json={"keep_loaded": True}, headers=origin)
        assert r.status_code == 200 and r.json["keep_loaded"] is True, r.json
        assert client.patch("/api/v1/models/nope", json={"keep_loaded": True}, headers=origin).status_code == 404
        assert client.patch("/api/v1/models/demo", json={"keep_loaded": "yes please"}, headers=origin).status_code in (400, 422)
        listed = {m["id"]: m["keep_loaded"] for m in client.get("/api/v1/models").json}
        assert listed["demo-inpaint"] is True and listed["demo"] is False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "demo-inpaint" not in client.get("/api/v1/models/cache").json["loaded"]:
            time.sleep(0.2)
        assert "demo-inpaint" in client.get("/api/v1/models/cache").json["loaded"], "loaded without a job"
    finally:
        shutdown(app)
    again = create_app({"root": str(tmp_path), "device": "cpu"})  # the next start loads it again
    try:
        client = again.test_client()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "demo-inpaint" not in client.get("/api/v1/models/cache").json["loaded"]:
            time.sleep(0.2)
        assert client.get("/api/v1/models/cache").json["loaded"] == ["demo-inpaint"]
        r = client.patch("/api/v1/models/demo-inpaint", json={"keep_loaded": False}, headers={"Origin": "http://localhost"})
        assert r.json["keep_loaded"] is False
    finally:
        shutdown(again)


def test_fp8_storage_keeps_a_denoiser_at_a_byte_a_weight_and_nearly_the_same_pixels(tmp_path):
    import torch

    engine = Engine(root=tmp_path / "root", device="cpu")
    doc = job("demo-flux")
    native = run1(engine, doc)[0]
    flux = engine.resolve_model("demo-flux")
    before = {c.name: c.size_bytes for c in engine.cache.stats().components}
    engine.registry.set_options("demo-flux", weights="fp8")
    stored = run1(engine, doc)[0]
    pipe = engine.cache.get(flux, engine.device).model
    assert pipe.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn
    after = {c.name: c.size_bytes for c in engine.cache.stats().components if "|fp8" in c.key}
    assert set(after) == {"transformer"} and after["transformer"] < before["transformer"] / 2
    assert np.abs(stored.image.astype(int) - native.image.astype(int)).mean() < 4, "fp8 weights: nearly the same image"
    assert np.array_equal(run1(engine, doc)[0].image, stored.image), "and the same from job to job"
    engine.registry.set_options("demo-flux", weights="native")
    assert np.array_equal(run1(engine, doc)[0].image, native.image), "native again: the encoders shared, the transformer as loaded"


def test_the_api_sets_a_models_weight_storage_and_says_what_it_takes(tmp_path):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        origin = {"Origin": "http://localhost"}
        native = client.patch("/api/v1/models/demo-flux", json={"weights": "native"}, headers=origin).json  # (built when first used)
        r = client.patch("/api/v1/models/demo-flux", json={"weights": "fp8"}, headers=origin)
        assert r.status_code == 200 and r.json["weights"] == "fp8" and r.json["keep_loaded"] is False, r.json
        assert native["weights"] == "native" and 0 < r.json["memory_bytes"] < native["memory_bytes"], (native, r.json)
        listed = next(m for m in client.get("/api/v1/models").json if m["id"] == "demo-flux")
        assert (listed["weights"], listed["memory_bytes"]) == ("fp8", r.json["memory_bytes"])
        for bad in ({"weights": "int4"}, {}, {"keep_loaded": True, "extra": 1}):
            assert client.patch("/api/v1/models/demo-flux", json=bad, headers=origin).status_code in (400, 422), bad
    finally:
        shutdown(app)


def test_nf4_and_int8_are_refused_without_a_cuda_card_and_the_next_job_runs(tmp_path):
    """bitsandbytes quantises on a CUDA card only: on the CPU the API says so (422, naming what to use) and
    keeps the option; an options file edited by hand fails the job with that message, and loads nothing."""
    from server.app import create_app, shutdown

    from invoke_core.errors import UnsupportedError

    app = create_app({"root": str(tmp_path / "app"), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        origin = {"Origin": "http://localhost"}
        for storage in ("nf4", "int8"):
            r = client.patch("/api/v1/models/demo-flux", json={"weights": storage}, headers=origin)
            assert r.status_code == 422 and "CUDA" in r.json["message"] and "native or fp8" in r.json["message"], r.json
        listed = next(m for m in client.get("/api/v1/models").json if m["id"] == "demo-flux")
        assert listed["weights"] == "native"
        storages = {s["name"]: s for s in client.get("/api/v1/models/cache").json["weight_storages"]}
        assert list(storages) == ["native", "fp8", "nf4", "int8"]
        assert storages["fp8"]["usable"] and not storages["nf4"]["usable"] and "CUDA" in storages["int8"]["reason"]
    finally:
        shutdown(app)

    engine = Engine(root=tmp_path / "root", device="cpu")
    engine.registry.set_options("demo-flux", weights="native")
    engine.registry.store.options_file.write_text('{"demo-flux": {"weights": "nf4"}}')  # as a hand edit would
    with pytest.raises(UnsupportedError, match="nf4 weights need a CUDA card"):
        run1(engine, job("demo-flux"))
    assert engine.cache.stats().component_loads == 0, "refused before anything was read"
    engine.registry.set_options("demo-flux", weights="native")
    assert run1(engine, job("demo-flux"))[0].image.shape == (32, 32, 3)


def test_memory_estimates_follow_the_weight_storage(tmp_path):
    from invoke_core.memory_estimate import model_memory
    from invoke_core.weight_storage import stored_bytes

    engine = Engine(root=tmp_path / "root", device="cpu")
    flux = engine.resolve_model("demo-flux")
    sizes = {s: model_memory(flux, "bfloat16", s) for s in ("native", "fp8", "int8", "nf4")}
    assert sizes["native"] > sizes["fp8"] == sizes["int8"] > sizes["nf4"] > 0, sizes
    assert stored_bytes(4096, 4, "nf4") == 576 and stored_bytes(4096, 2, "fp8") == 2048 and stored_bytes(4096, 2, "native") == 4096
