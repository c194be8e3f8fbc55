"""Out of memory fails the job with the settings to change and the worker goes on; VAE tiling lets large
boxes decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_jobs import Jobs, run1

from invoke_core.errors import OutOfMemoryError


def out_of_memory_once():
    """A denoiser hook that raises the device's out-of-memory error at its first forward, as CUDA does."""
    calls = []

    def hook():
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")

    return hook


def test_out_of_memory_in_the_denoiser_names_the_settings_and_the_next_job_runs(tmp_path):
    from invoke_core.engine import Engine

    engine = Engine(root=tmp_path, device="cpu")
    doc = Jobs("demo", cfg_scale=7.5).doc(size=64, steps=2)
    engine.denoiser_hook = out_of_memory_once()
    with pytest.raises(OutOfMemoryError, match=r"out of memory on cpu generating 64x64: make the box smaller or lower the scale, turn VAE tiling on \(--vae-tiling on\), lower the model cache's budget"):
        run1(engine, doc)
    assert not any(c.pinned for c in engine.cache.stats().components), "the job let go of what it held"
    assert run1(engine, doc)[0].image.shape == (64, 64, 3), "the next job runs"
    engine.denoiser_hook = None
    boom = RuntimeError("shape mismatch")
    engine.denoiser_hook = lambda: (_ for _ in ()).throw(boom)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run1(engine, doc)  # other errors are not called out of memory


def test_the_worker_fails_an_out_of_memory_item_and_takes_the_next(tmp_path):
    import time

    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu"})
    try:
        worker = app.extensions["invoke_canvas"].worker
        assert worker.engine_ready.wait(60) and worker.engine is not None, worker.engine_error
        worker.engine.denoiser_hook = out_of_memory_once()
        client = app.test_client()
        body = {"document": {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "p", "steps": 2}}}
        ids = [client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"}).json["item_ids"][0] for _ in range(2)]
        deadline, items = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            items = [client.get(f"/api/v1/queue/items/{i}").json for i in ids]
            if all(i["status"] in ("completed", "failed") for i in items):
                break
            time.sleep(0.2)
        first, second = items
        assert (first["status"], first["error_type"]) == ("failed", "OutOfMemoryError"), first
        assert "--vae-tiling on" in first["error_message"]
        assert second["status"] == "completed", second
        assert client.get("/api/v1/health").status_code == 200
    finally:
        shutdown(app)


def test_vae_tiling_decodes_a_2048_box(engine, sdxl_folder):
    """On the tiny SDXL (its UNet attends at 1/16 of the latent size, not at all of it as the SD1.5 demo's
    does: minutes on 2 cores at 2048 px), one step."""
    from invoke_core.engine import _set_vae_tiling
    from invoke_core.model_install import install_model

    record = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl for tiling")
    try:
        big = run1(engine, Jobs(record.id, cfg_scale=1.0).doc(size=2048, steps=1))[0]
        assert big.image.shape == (2048, 2048, 3) and big.metadata["vae_tiling"] is True
        small = run1(engine, Jobs(record.id, cfg_scale=1.0).doc(size=64, steps=1))[0]
        assert "vae_tiling" not in small.metadata, "auto: small boxes decode whole"
        pipe = engine.cache.get(record, engine.device).model
        assert pipe.vae.tile_sample_min_size >= 512, "tiles of 512 px at least: dozens for 2048 px, not thousands"
        assert _set_vae_tiling(pipe, "on", (64, 64)) and pipe.vae.use_tiling
        assert not _set_vae_tiling(pipe, "off", (4096, 4096)) and not pipe.vae.use_tiling
        assert big.image.std() > 0
    finally:
        engine.registry.remove(record.id)


def test_a_load_that_cannot_fit_is_refused_before_it_starts(tmp_path):
    """The free memory is the cache's to ask (a test hook): too little, and the load is refused with the
    figures, nothing half-loaded; what is unpinned goes first to make room."""
    from invoke_core.engine import Engine
    from invoke_core.memory_estimate import loaded_bytes, weight_files

    engine = Engine(root=tmp_path, device="cpu")
    doc = Jobs("demo", cfg_scale=7.5).doc(size=64, steps=1)
    record = engine.resolve_model("demo")
    needed = loaded_bytes(weight_files(record.path), 4)
    assert 0.5 * engine.cache.get(record, engine.device).size_bytes < needed <= 1.5 * engine.cache.get(record, engine.device).size_bytes
    engine.cache.clear()
    engine.cache.available_memory = lambda device: 1000
    with pytest.raises(OutOfMemoryError, match=r"model 'demo' needs about 0\.\d\d GB of RAM to load and 0\.00 GB are free: close other programs"):
        run1(engine, doc)
    assert engine.cache.stats().loaded == () and engine.cache.stats().components == ()
    # room made by dropping what is loaded and unpinned
    engine.cache.available_memory = lambda device: 10 << 30
    run1(engine, Jobs("demo-inpaint", cfg_scale=7.5).doc(size=64, steps=1))

    def freed(device):  # nothing free until the cache has let go of what it holds
        return (10 << 30) if not engine.cache.stats().components else 0

    engine.cache.available_memory = freed
    assert run1(engine, doc)[0].image.shape == (64, 64, 3)
    assert engine.cache.stats().loaded == ("demo",), "demo-inpaint went to make room"
