"""End to end through compile_canvas and Engine.run on the real demo pipelines (CPU, tiny sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rgba

from invoke_core.compile import compile_canvas
from invoke_core.errors import GenerationCancelled, InvalidCanvasError, ModelNotFoundError
from invoke_core.schedulers import SCHEDULER_NAMES
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind


def params(**kw) -> GenerationParams:
    base = dict(prompt="a lighthouse at dusk", steps=3, seed=7, cfg_scale=5.0, mask_blur=0, infill="color")
    base.update(kw)
    return GenerationParams(**base)


def doc(layers=(), size=64, **kw) -> CanvasDocument:
    return CanvasDocument(Bounds(0, 0, size, size), tuple(layers), params(**kw))


def mask_layer(size: int, box: tuple[int, int, int, int]) -> Layer:
    pixels = np.zeros((size, size, 4), np.uint8)
    y0, y1, x0, x1 = box
    pixels[y0:y1, x0:x1, 3] = 255
    return Layer("mask", LayerKind.INPAINT_MASK, 0, 0, pixels)


def run1(engine, document, **kw):
    return engine.run(compile_canvas(document), **kw)


def test_txt2img_same_seed_same_pixels_and_other_seed_differs(engine):
    a = run1(engine, doc(seed=7))[0]
    b = run1(engine, doc(seed=7))[0]
    c = run1(engine, doc(seed=8))[0]
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    assert a.metadata["mode"] == "txt2img" and a.metadata["seed"] == 7
    assert a.metadata["model"]["id"] == "demo" and len(a.metadata["model"]["hash"]) == 64


def test_batch_uses_consecutive_seeds_reproducible_one_by_one(engine):
    batch = run1(engine, doc(seed=41, batch_size=3))
    assert [r.seed for r in batch] == [41, 42, 43]
    single = run1(engine, doc(seed=42))[0]
    assert np.array_equal(batch[1].image, single.image)
    assert not np.array_equal(batch[0].image, batch[1].image)


def test_img2img_changes_the_image_and_keeps_its_size(engine):
    init = rgba(64, 64, seed=1)
    result = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, init)], strength=0.6))[0]
    assert result.metadata["mode"] == "img2img"
    assert result.image.shape == (64, 64, 3)
    assert not np.array_equal(result.image, init[..., :3])


@pytest.mark.parametrize("model", ["demo", "demo-inpaint"])
def test_inpaint_keeps_every_pixel_outside_the_mask(engine, model):
    init = rgba(64, 64, seed=2)
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer(64, (16, 40, 8, 48))]
    result = run1(engine, doc(layers, model=model, strength=1.0))[0]
    assert result.metadata["mode"] == "inpaint"
    outside = np.ones((64, 64), bool)
    outside[16:40, 8:48] = False
    assert np.array_equal(result.image[outside], init[..., :3][outside])
    assert not np.array_equal(result.image[~outside], init[..., :3][~outside])


def test_inpaint_with_blur_only_changes_the_blurred_border(engine):
    init = rgba(64, 64, seed=3)
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer(64, (24, 40, 24, 40))]
    result = run1(engine, doc(layers, mask_blur=4, strength=1.0))[0]
    far = np.ones((64, 64), bool)
    far[24 - 4 : 40 + 4, 24 - 4 : 40 + 4] = False  # the mask grown by the blur radius
    assert np.array_equal(result.image[far], init[..., :3][far])


@pytest.mark.parametrize("model", ["demo", "demo-inpaint"])
def test_outpaint_keeps_every_originally_opaque_pixel(engine, model):
    init = rgba(40, 64, seed=4)  # covers the top 40 rows of a 64x64 bbox
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init)]
    result = run1(engine, doc(layers, model=model, strength=1.0, infill="telea"))[0]
    assert result.metadata["mode"] == "outpaint"
    assert np.array_equal(result.image[:40], init[..., :3])
    assert result.image[40:].std() > 0  # the new part was painted


def test_scaled_generation_returns_bbox_size(engine):
    result = run1(engine, doc(size=64, scale=0.5))[0]
    assert result.image.shape == (64, 64, 3)
    assert result.metadata["generation_size"] == [32, 32]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_runs_and_is_deterministic(engine, name):
    a = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    b = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    assert a.image.shape == (32, 32, 3)
    assert np.array_equal(a.image, b.image), name
    assert a.metadata["scheduler"] == name


def test_progress_reports_each_step_with_a_small_preview(engine):
    seen = []
    run1(engine, doc(steps=4), on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4]
    assert {p.total for p in seen} == {4}
    assert seen[-1].preview.size == (8, 8)  # latent size: 64 / 8


def test_cancel_stops_within_one_step_and_returns_nothing(engine):
    seen = []
    with pytest.raises(GenerationCancelled):
        run1(engine, doc(steps=10), on_progress=seen.append, is_cancelled=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_cancel_before_start(engine):
    with pytest.raises(GenerationCancelled):
        run1(engine, doc(), is_cancelled=lambda: True)


def test_second_job_on_a_loaded_model_loads_nothing(data_root):
    from invoke_core.engine import Engine

    fresh = Engine(root=data_root, device="cpu")
    run1(fresh, doc())
    run1(fresh, doc(seed=9))
    stats = fresh.cache.stats()
    assert stats.loads == 1 and stats.hits == 1


def test_cache_evicts_least_recently_used_over_budget(data_root):
    from invoke_core.engine import Engine

    small = Engine(root=data_root, device="cpu", ram_cache_gb=0.000001)
    run1(small, doc())
    run1(small, doc(model="demo-inpaint"))
    stats = small.cache.stats()
    assert stats.loaded == ("demo-inpaint",) and stats.evictions == 1


def test_sdxl_txt2img_and_inpaint(engine, sdxl_folder, sdxl_inpaint_folder):
    from invoke_core.model_install import install_model

    main = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl")
    inpaint = install_model(engine.registry, str(sdxl_inpaint_folder), name="tiny sdxl inpaint")
    try:
        assert (main.family, main.kind) == ("sdxl", "main")
        assert (inpaint.family, inpaint.kind) == ("sdxl", "inpaint")
        a = run1(engine, doc(model=main.id))[0]
        b = run1(engine, doc(model=main.id))[0]
        assert np.array_equal(a.image, b.image) and a.metadata["model"]["family"] == "sdxl"
        init = rgba(64, 64, seed=5)
        layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer(64, (0, 32, 0, 64))]
        for model in (main.id, inpaint.id):
            result = run1(engine, doc(layers, model=model, strength=1.0))[0]
            assert np.array_equal(result.image[32:], init[32:, :, :3])
    finally:
        engine.registry.remove(main.id)
        engine.registry.remove(inpaint.id)


def test_unknown_model_and_scheduler_are_clear_errors(engine):
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        run1(engine, doc(model="nope"))
    with pytest.raises(InvalidCanvasError, match="unknown scheduler 'fast'"):
        run1(engine, doc(scheduler="fast"))
    with pytest.raises(InvalidCanvasError, match="controlnet"):
        run1(engine, doc(model="demo-controlnet"))


def test_single_file_checkpoint_installs_and_generates_like_its_folder(engine, tmp_path):
    from pathlib import Path

    from ckpt_export import export_pipeline_to_single_file

    from invoke_core.model_install import install_model

    folder = Path(engine.registry.get("demo").path)
    ckpt = export_pipeline_to_single_file(folder, tmp_path / "demo-single.safetensors")
    # The tiny demo is not SD1.5-sized, so it names its own config folder instead of the shipped one.
    record = install_model(engine.registry, str(ckpt), name="demo single file", config=str(folder))
    try:
        assert (record.format, record.family, record.kind) == ("single-file", "sd-1", "main")
        a = run1(engine, doc(model=record.id))[0]
        b = run1(engine, doc(model="demo"))[0]
        assert np.array_equal(a.image, b.image)  # same weights, same pixels
    finally:
        engine.registry.remove(record.id)


def test_compiled_unet_gives_the_same_pixels(data_root, engine):
    # The "eager" backend checks the torch.compile wiring in seconds; "inductor" (the GPU setting)
    # compiles for about a minute on this CPU, so it is exercised on a GPU machine instead.
    from invoke_core.engine import Engine

    compiled = Engine(root=data_root, device="cpu", compile_backend="eager")
    a = run1(compiled, doc(seed=3))[0]
    b = run1(engine, doc(seed=3))[0]
    assert "compile" in a.metadata["fast_path"]  # the job ran on the compiled UNet (invoke_core/fast_path.py)
    assert np.array_equal(a.image, b.image)
