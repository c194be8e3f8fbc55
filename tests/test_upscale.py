"""Upscaling: the tile maths, upscaler models (spandrel; safetensors, or .pth through torch's weights-only
loader), upscale jobs with the tiled diffusion refine (and its seams), hires fix, the CLI and the API.
Real spandrel, real diffusers pipelines on the tiny demo models (random weights), on the CPU."""

from __future__ import annotations

import io
import shutil
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from invoke_core import upscale
from invoke_core.compile import compile_canvas
from invoke_core.errors import GenerationCancelled, InvalidCanvasError, ModelInstallError
from invoke_core.model_install import install_model
from invoke_core.model_records import ModelRegistry
from invoke_core.tiles import TileBlender, blend_tiles, crop, feather_weights, tile_grid
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, HiresFix, Layer, LayerKind, UpscaleSettings
from invoke_core import upscalers


def gradient(side: int = 64, alpha: int = 255) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side]
    return np.dstack([x * 255 // side, y * 255 // side, (x + y) * 127 // side, np.full((side, side), alpha)]).astype(np.uint8)


def upscale_doc(pixels: np.ndarray | None = None, side: int = 64, steps: int = 10, seed: int = 3, **settings) -> CanvasDocument:
    layers = () if pixels is None else (Layer("picture", LayerKind.RASTER, 0, 0, pixels),)
    return CanvasDocument(Bounds(0, 0, side, side), layers, GenerationParams("a photo", steps=steps, seed=seed, upscale=UpscaleSettings(**settings)))


# --- the tile maths (pure) ---------------------------------------------------------------------------------


@given(
    width=st.integers(1, 40).map(lambda n: n * 8),
    height=st.integers(1, 40).map(lambda n: n * 8),
    tile=st.integers(2, 20).map(lambda n: n * 8),
    overlap=st.integers(0, 8).map(lambda n: n * 4),
)
def test_tile_grid_covers_the_image_with_equal_tiles_that_overlap_enough(width, height, tile, overlap):
    overlap = min(overlap, tile - 8)
    grid = tile_grid(width, height, tile, overlap, multiple=8)
    covered = np.zeros((height, width), int)
    for t in grid:
        assert (t.width, t.height) == (min(tile, width), min(tile, height))
        assert 0 <= t.x and t.right <= width and 0 <= t.y and t.bottom <= height
        covered[t.y : t.bottom, t.x : t.right] += 1
    assert covered.min() >= 1
    xs = sorted({t.x for t in grid})
    assert xs[0] == 0 and xs[-1] + min(tile, width) == width
    for a, b in zip(xs, xs[1:]):
        assert a + min(tile, width) - b >= overlap  # neighbours overlap by at least the overlap asked


def test_feather_weights_make_a_partition_of_unity_and_identical_tiles_blend_back_exactly():
    image = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    grid = tile_grid(160, 96, 64, 24)
    assert len(grid) > 4
    total = np.zeros((96, 160), np.float32)
    for t in grid:
        w = feather_weights(t, grid, 160, 96)
        assert w.shape == (t.height, t.width) and w.min() > 0 and w.max() <= 1
        total[t.y : t.bottom, t.x : t.right] += w
    assert np.allclose(total, 1, atol=1e-5)  # raised-cosine ramps over each overlap sum to one
    assert np.array_equal(blend_tiles(grid, [crop(image, t) for t in grid], 160, 96), image)
    # at the image's edges the weight stays 1; at an inner tile edge it falls to (nearly) 0
    inner = next(t for t in grid if t.x > 0)
    w = feather_weights(inner, grid, 160, 96)
    assert w[w.shape[0] // 2, 0] < 0.01 and w.max() > 0.99
    assert feather_weights(grid[0], grid, 160, 96)[0, 0] == 1


def test_blender_scales_tiles_and_its_paste_mode_has_hard_edges():
    image = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    grid = tile_grid(48, 32, 24, 8)
    big = np.repeat(np.repeat(image, 2, 0), 2, 1)  # each tile "upscaled" x2, blended at the output size
    assert np.array_equal(blend_tiles(grid, [crop(big, Bounds(t.x * 2, t.y * 2, t.width * 2, t.height * 2)) for t in grid], 48, 32, scale=2), big)
    paste = TileBlender(48, 32, 3, grid, feather=0)
    for number, t in enumerate(grid):
        paste.add(t, np.full((t.height, t.width, 3), number * 10, np.uint8))
    last = paste.result()
    assert last[0, 47, 0] == (len([t for t in grid if t.y == 0]) - 1) * 10  # the last tile pasted wins
    with pytest.raises(ValueError, match="expected"):
        paste.add(grid[0], np.zeros((3, 3, 3), np.uint8))


# --- upscaler models ----------------------------------------------------------------------------------------


def test_demo_upscalers_are_tiny_esrgans_that_spandrel_recognises(engine):
    listed = {r.id: r for r in engine.registry.list()}
    for model_id, scale in (("demo-upscaler", 4), ("demo-upscaler-x2", 2)):
        assert listed[model_id].kind == "upscaler" and listed[model_id].scale == scale and listed[model_id].builtin
        record = engine.registry.get(model_id)  # built on first use: one .safetensors file
        assert record.path.endswith(".safetensors") and len(record.hash) == 64
        info = upscalers.probe_upscaler(record.path)
        assert (info.architecture, info.scale) == ("ESRGAN", scale)
        module = engine.cache.get(record, engine.device).model
        out = upscalers.upscale_rgb(module, gradient(32)[..., :3])
        assert out.shape == (32 * scale, 32 * scale, 3)
        # near-identity random weights: the picture survives (a nearest-neighbour upscale, a little noisy)
        nearest = np.repeat(np.repeat(gradient(32)[..., :3], scale, 0), scale, 1).astype(int)
        assert np.abs(out.astype(int) - nearest).mean() < 40
    assert engine.registry.default_model_id("upscaler") == "demo-upscaler"


def test_spandrel_imports_without_torchvision_and_leaves_no_placeholder():
    import importlib.util

    spandrel = upscalers._import_spandrel()
    assert spandrel.__version__ == "0.4.2"
    if importlib.util.find_spec("torchvision") is None:  # the placeholders were for the import only
        assert not any(name == "torchvision" or name.startswith("torchvision.") for name in sys.modules)
        from spandrel.architectures.LaMa.__arch import LaMa

        with pytest.raises(RuntimeError, match="torchvision is not installed"):
            LaMa.rotate(torch.zeros(1), 0)


def test_install_upscalers_by_path_safetensors_and_weights_only_pth(engine, tmp_path):
    registry = ModelRegistry(tmp_path / "root")
    source = tmp_path / "4x-Tiny.safetensors"
    shutil.copy(engine.registry.get("demo-upscaler").path, source)
    record = install_model(registry, str(source))
    assert (record.kind, record.family, record.format, record.scale) == ("upscaler", "any", "single-file", 4)
    assert "ESRGAN" in record.description and "x4" in record.description
    # the same weights as a plain .pth state dict (tensors only): read by torch's weights-only loader
    pth = tmp_path / "2x-Tiny.pth"
    torch.save(upscalers.demo_state_dict(2), pth)
    record = install_model(registry, str(pth))
    assert (record.kind, record.scale) == ("upscaler", 2)
    assert {r.id for r in registry.list() if not r.builtin} == {"4x-tiny", "2x-tiny"}


class _Tripwire:
    """Unpickling this creates a marker file: proof that a refused file was never unpickled."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pth_upscaler_holding_a_pickled_object_is_refused_unrun_and_nothing_installed(tmp_path):
    registry = ModelRegistry(tmp_path / "root")
    marker = tmp_path / "unpickled"
    _Tripwire.marker = str(marker)
    evil = tmp_path / "4x-Evil.pth"
    torch.save({**upscalers.demo_state_dict(4), "payload": _Tripwire()}, evil)
    with pytest.raises(ModelInstallError, match="weights-only loader refused it") as err:
        install_model(registry, str(evil))
    message = str(err.value)
    assert "pickle" in message.lower() and "safetensors" in message and "\n" not in message
    assert not marker.exists()
    assert [r for r in registry.list() if not r.builtin] == []
    with pytest.raises(ModelInstallError, match="weights-only"):  # nor loaded by any other way
        upscalers.load_upscaler(evil, None)
    assert not marker.exists()


def test_a_scan_registers_pth_upscalers_and_skips_the_unsafe_one(tmp_path):
    from invoke_core.model_scan import scan

    folder = tmp_path / "webui" / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    torch.save(upscalers.demo_state_dict(4), folder / "4x-Tiny.pth")
    _Tripwire.marker = str(tmp_path / "unpickled")
    torch.save({**upscalers.demo_state_dict(2), "payload": _Tripwire()}, folder / "2x-Evil.pth")
    torch.save({"state_dict": {}}, folder / "old.ckpt")
    found = scan(ModelRegistry(tmp_path / "root"), tmp_path / "webui")
    assert [(r.name, r.kind, r.scale) for r in found.installed] == [("4x-Tiny", "upscaler", 4)]
    skipped = dict(found.skipped)
    assert "weights-only loader refused it" in skipped[str(folder / "2x-Evil.pth")]
    assert "never loaded" in skipped[str(folder / "old.ckpt")]
    assert not (tmp_path / "unpickled").exists()


def test_what_is_not_an_upscaler_is_refused_clearly(engine, tmp_path):
    from safetensors.torch import save_file

    registry = ModelRegistry(tmp_path / "root")
    # an ESRGAN without upsampling layers is a x1 restoration model
    state = {k: v for k, v in upscalers.demo_state_dict(2).items() if not k.startswith("conv_up")}
    save_file(state, tmp_path / "1x-denoise.safetensors")
    with pytest.raises(ModelInstallError, match="restoration model .x1., not an upscaler"):
        install_model(registry, str(tmp_path / "1x-denoise.safetensors"))
    # a main model named as the upscaler of a job
    with pytest.raises(InvalidCanvasError, match="'demo' is a main model, not an upscaler; installed upscalers: demo-upscaler"):
        engine.run(compile_canvas(upscale_doc(gradient(), model="demo")))
    # a .pth of tensors that is no known architecture gets the pickle advice too
    torch.save({"weight": torch.zeros(3)}, tmp_path / "mystery.pth")
    with pytest.raises(ModelInstallError, match="no model architecture spandrel knows.*arbitrary code"):
        install_model(registry, str(tmp_path / "mystery.pth"))


# --- upscale jobs -------------------------------------------------------------------------------------------


def test_upscale_x2_of_a_64_layer_through_the_upscaler_and_the_tiled_refine(engine):
    seen = []
    request = compile_canvas(upscale_doc(gradient(), model="demo-upscaler-x2", scale=2, refine_strength=0.3, tile_size=64, tile_overlap=32))
    result = engine.run(request, on_progress=seen.append)[0]
    assert result.image.shape == (128, 128, 3) and result.image.dtype == np.uint8
    meta = result.metadata
    assert meta["mode"] == "upscale" and (meta["width"], meta["height"]) == (128, 128) and meta["bbox"] == [0, 0, 64, 64]
    up = meta["upscale"]
    assert up["model"]["id"] == "demo-upscaler-x2" and up["model"]["scale"] == 2 and len(up["model"]["hash"]) == 64
    assert (up["scale"], up["refine_strength"], up["passes"], up["tiles"], up["tile_size"]) == (2, 0.3, 1, 9, 64)
    assert meta["model"]["id"] == "demo" and meta["seed"] == 3
    # progress over every part: the upscaler's tile, then each refine tile's steps, one count to its total
    assert [p.phase for p in seen[:1]] == ["upscaling"] and {p.phase for p in seen[1:]} == {"refining"}
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[-1] == seen[-1].total == 1 + 9 * 3
    assert seen[-1].preview.size[0] <= 384  # the whole picture so far, the running tile's preview in its place
    # the refine changed the upscaler's picture; the upscaler alone is the plain x2
    plain = engine.run(compile_canvas(upscale_doc(gradient(), model="demo-upscaler-x2", scale=2)))[0]
    assert plain.image.shape == (128, 128, 3) and "tiles" not in plain.metadata["upscale"] and "model" not in plain.metadata
    assert np.abs(plain.image.astype(int) - result.image.astype(int)).mean() > 5
    # an x4 model asked for x2 runs once and scales down; an x2 model asked for x4 runs twice
    assert engine.run(compile_canvas(upscale_doc(gradient(), model="demo-upscaler", scale=2)))[0].image.shape == (128, 128, 3)
    twice = engine.run(compile_canvas(upscale_doc(gradient(), model="demo-upscaler-x2", scale=4)))[0]
    assert twice.image.shape == (256, 256, 3) and twice.metadata["upscale"]["passes"] == 2


def seam_ratio(image: np.ndarray, grid: list[Bounds], tiles: list[np.ndarray]) -> float:
    """The mean absolute difference between the neighbouring pixel columns (rows) on either side of each tile
    edge, over the same difference within a tile: in the blend of the tiles that hold both sides of that edge
    (the tiles it is not an edge of), as they show those two columns. A blend that leaves no boundary keeps
    there what the tiles themselves show (1); a step the tiling adds makes it larger."""
    side = image.shape[0]
    across, within = [], []
    for axis in (1, 0):
        start = (lambda t: t.x) if axis == 1 else (lambda t: t.y)
        end = (lambda t: t.right) if axis == 1 else (lambda t: t.bottom)
        for edge in sorted({start(t) for t in grid if start(t) > 0} | {end(t) for t in grid if end(t) < side}):
            holding = [(t, px) for t, px in zip(grid, tiles) if start(t) < edge < end(t)]
            blender = TileBlender(side, side, 3, [t for t, _ in holding])
            for t, px in holding:
                blender.add(t, px)
            reference = blender.partial(np.zeros_like(image)).astype(float)
            covered = np.zeros((side, side), bool)
            for t, _ in holding:
                covered[t.y : t.bottom, t.x : t.right] = True
            take = (lambda a: a[:, edge - 1 : edge + 1]) if axis == 1 else (lambda a: a[edge - 1 : edge + 1].swapaxes(0, 1))
            rows = take(covered).all(axis=1)
            pair, ref = take(image.astype(float))[rows], take(reference)[rows]
            across.append(np.abs(pair[:, 1] - pair[:, 0]).mean())
            within.append(np.abs(ref[:, 1] - ref[:, 0]).mean())
    return float(np.mean(across) / np.mean(within))


def test_the_tiled_refine_leaves_no_visible_seam(engine):
    document = upscale_doc(gradient(), model="demo-upscaler-x2", refine_strength=0.4, tile_size=64, tile_overlap=32)
    refined = engine.run(compile_canvas(document))[0].image  # the job's output: 128x128 from 3x3 tiles
    # the same job's parts, one by one: the upscaler's picture and each refine tile
    request = upscale.job_request(compile_canvas(document))
    record = engine.resolve_model("demo")
    module = engine.cache.get(engine.registry.get("demo-upscaler-x2"), engine.device).model
    upscaled, _ = upscale.upscale_to(module, np.asarray(request.init_image), (128, 128), None, None)
    grid = upscale.refine_grid(record, 128, 128, 64, 32)
    params = upscale.refine_params(request.params, 0.4, 3)
    with engine.cache.job():
        tiles = [upscale.refine_tile(engine, params, record, upscaled, t) for t in grid]
    assert len(grid) == 9 and np.array_equal(refined, blend_tiles(grid, tiles, 128, 128))
    # no tile boundary visible: across each tile edge the picture changes no more than within the tiles there
    assert seam_ratio(refined, grid, tiles) <= 1.01
    # the test can fail: the same tiles pasted over each other, each a little lighter or darker than the last
    # (the colour drift of a real refine), leave their edges; blended, the drift fades across the overlaps
    drifted = [np.clip(px.astype(int) + (20 if n % 2 else -20), 0, 255).astype(np.uint8) for n, px in enumerate(tiles)]
    pasted = TileBlender(128, 128, 3, grid, feather=0)
    for t, px in zip(grid, drifted):
        pasted.add(t, px)
    assert seam_ratio(pasted.result(), grid, drifted) > 1.3
    assert seam_ratio(blend_tiles(grid, drifted, 128, 128), grid, drifted) <= 1.01


def test_upscale_cancel_stops_between_tiles_and_steps(engine):
    request = compile_canvas(upscale_doc(gradient(), model="demo-upscaler-x2", refine_strength=0.5, tile_size=64, tile_overlap=16))
    seen = []

    def cancelled() -> bool:
        return len(seen) >= 4

    with pytest.raises(GenerationCancelled):
        engine.run(request, on_progress=seen.append, is_cancelled=cancelled)
    assert 4 <= len(seen) <= 5


def test_an_upscale_keeps_the_transparent_parts_of_the_box(engine):
    pixels = gradient()
    pixels[:, 32:, 3] = 0  # the right half transparent
    result = engine.run(compile_canvas(upscale_doc(pixels, model="demo-upscaler-x2")))[0]
    assert result.image.shape == (128, 128, 4)
    assert (result.image[:, :56, 3] == 255).all() and (result.image[:, 72:, 3] == 0).all()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"scale": 3}, "upscale scale must be 2 or 4, got 3"),
        ({"refine_strength": 1.5}, "refine strength must be a number in [0, 1]"),
        ({"tile_size": 60}, "tile size must be a multiple of 8"),
        ({"refine_strength": 0.05}, "gives no denoising step"),
    ],
)
def test_bad_upscale_settings_are_one_clear_line(settings, message):
    with pytest.raises(InvalidCanvasError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_canvas(upscale_doc(gradient(), **settings))


def test_an_empty_box_and_an_unknown_upscaler_are_refused(engine):
    with pytest.raises(InvalidCanvasError, match="the box is empty: there is nothing to upscale"):
        compile_canvas(upscale_doc(None))
    with pytest.raises(InvalidCanvasError, match="'4x-nothing' is not installed, not an upscaler"):
        engine.run(compile_canvas(upscale_doc(gradient(), model="4x-nothing")))


# --- hires fix ----------------------------------------------------------------------------------------------


def test_hires_fix_generates_small_upscales_refines_and_records_it(engine):
    from db.png_metadata import recall_extras
    from invoke_core.metadata import png_bytes, read_png_metadata

    def job(hires):
        return CanvasDocument(Bounds(0, 0, 64, 64), (), GenerationParams("a lighthouse", steps=6, seed=5, hires_fix=hires))

    seen = []
    result = engine.run(compile_canvas(job(HiresFix(scale=2, strength=0.5, upscaler="demo-upscaler-x2"))), on_progress=seen.append)[0]
    assert result.image.shape == (64, 64, 3)
    meta = result.metadata
    assert meta["mode"] == "txt2img" and meta["strength"] == 0.75  # the job's own, not the refine's
    hires = meta["hires_fix"]
    assert (hires["scale"], hires["strength"], hires["first_pass_size"]) == (2, 0.5, [32, 32])
    assert hires["upscaler"]["id"] == "demo-upscaler-x2" and hires["upscaler"]["scale"] == 2
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and seen[-1].step == seen[-1].total == 6 + 3  # both passes, one count
    assert engine.run(compile_canvas(job(HiresFix(scale=2, strength=0.5, upscaler="demo-upscaler-x2"))))[0].image.tobytes() == result.image.tobytes()
    plain = engine.run(compile_canvas(job(None)))[0]
    assert "hires_fix" not in plain.metadata and not np.array_equal(plain.image, result.image)
    resized = engine.run(compile_canvas(job(HiresFix(scale=1.5, strength=0.5))))[0]  # a plain Lanczos resize
    assert resized.metadata["hires_fix"]["upscaler"] is None and resized.metadata["hires_fix"]["first_pass_size"] == [40, 40]
    # recalled from the PNG as written
    path = engine.root / "hires.png"
    path.write_bytes(png_bytes(result.image, meta))
    recalled = recall_extras(read_png_metadata(path))["hires_fix"]
    assert recalled == {"scale": 2, "strength": 0.5, "upscaler": "demo-upscaler-x2", "upscaler_name": "Demo ESRGAN upscaler x2 (tiny)", "upscaler_hash": hires["upscaler"]["hash"]}
    with pytest.raises(InvalidCanvasError, match="hires fix scale must be a number in .1, 4."):
        compile_canvas(job(HiresFix(scale=1)))


# --- the command line ---------------------------------------------------------------------------------------


@pytest.fixture()
def cli(data_root, capsys):
    from server.cli import main

    def call(*args: str) -> tuple[int, str, str]:
        code = main([args[0], "--root", str(data_root), *args[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_cli_upscale_with_the_demo_upscaler(cli, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(gradient(60)[..., :3][:, :, :3][:50]).save(source)  # 60x50: not multiples of 8
    out = tmp_path / "out.png"
    code, stdout, err = cli("upscale", str(source), "--scale", "2", "--refine", "0.3", "--steps", "4", "--tile", "64", "--seed", "2", "--out", str(out))
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (120, 100)
        meta = img.text["invoke_canvas"]
    assert '"mode": "upscale"' in meta and "demo-upscaler" in meta
    assert "120x100" in stdout and "random weights" in err
    code, _, err = cli("upscale", str(source), "--scale", "4", "--model", "demo-upscaler-x2", "--out", str(tmp_path / "x4.png"))
    assert code == 0, err
    with Image.open(tmp_path / "x4.png") as img:
        assert img.size == (240, 200)


@pytest.mark.parametrize(
    "args, message",
    [
        (("__MISSING__",), "input image"),
        (("__BROKEN__",), "is not a readable image"),
        (("__IN__", "--model", "4x-nothing"), "'4x-nothing' is not installed, not an upscaler"),
        (("__IN__", "--scale", "3"), "upscale scale must be 2 or 4, got 3"),
        (("__IN__", "--refine", "2"), "refine strength must be a number in [0, 1]"),
    ],
)
def test_cli_upscale_bad_input_is_one_clear_line(cli, tmp_path, args, message):
    Image.fromarray(gradient(16)[..., :3]).save(tmp_path / "in.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    names = {"__IN__": tmp_path / "in.png", "__MISSING__": tmp_path / "absent.png", "__BROKEN__": tmp_path / "broken.png"}
    args = [str(names.get(a, a)) for a in args]
    code, _, err = cli("upscale", *args, "--out", str(tmp_path / "x.png"))
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_generate_with_hires_fix(cli, tmp_path):
    out = tmp_path / "hires.png"
    code, _, err = cli("generate", "--prompt", "a lighthouse", "--steps", "4", "--width", "64", "--height", "64", "--hires-fix", "2", "--out", str(out))
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (64, 64) and '"hires_fix"' in img.text["invoke_canvas"]


# --- the API ------------------------------------------------------------------------------------------------

API = "/api/v1"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path_factory.mktemp("upscale-api")), "device": "cpu"})
    yield app
    shutdown(app)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _job(client, image_id: str, **params) -> object:
    document = {
        "bbox": {"x": 16, "y": 8, "width": 64, "height": 64},
        "layers": [{"id": "picture", "kind": "raster", "x": 16, "y": 8, "image_id": image_id}],
        "params": {"prompt": "a photo", "steps": 4, "seed": 1, **params},
    }
    return client.post(f"{API}/canvas/jobs", json={"document": document})


def _wait(client, item_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (item := client.get(f"{API}/queue/items/{item_id}").json)["status"] not in ("completed", "failed", "canceled"):
        assert time.monotonic() < deadline, item
        time.sleep(0.05)
    return item


def test_api_upscale_job_and_its_bad_input(app):
    client = app.test_client()
    models = {m["id"]: m for m in client.get(f"{API}/models").json}
    assert models["demo-upscaler"]["kind"] == "upscaler" and models["demo-upscaler"]["scale"] == 4 and models["demo-upscaler"]["default"]
    image = client.post(f"{API}/images", data={"file": (io.BytesIO(_png(gradient())), "a.png")}, content_type="multipart/form-data").json
    before = client.get(f"{API}/queue/status").json["counts"]
    for params, status, words in (
        ({"upscale": {"model": "4x-nothing", "scale": 2}}, 422, "'4x-nothing' is not installed, not an upscaler"),
        ({"upscale": {"model": "demo", "scale": 2}}, 422, "is a main model, not an upscaler"),
        ({"upscale": {"scale": 3}}, None, "2 or 4"),
        ({"upscale": {"scale": 2, "refine_strength": -1}}, None, "refine_strength"),
        ({"hires_fix": {"scale": 2, "upscaler": "demo"}}, 422, "hires fix: 'demo' is a main model"),
    ):
        response = _job(client, image["id"], **params)
        assert 400 <= response.status_code < 500 and (status is None or response.status_code == status), response.json
        body = response.json
        assert set(body) >= {"error", "message"} and words in str(body), body
    assert client.get(f"{API}/queue/status").json["counts"] == before  # nothing queued
    response = _job(client, image["id"], upscale={"model": "demo-upscaler-x2", "scale": 2, "refine_strength": 0.5, "tile_size": 64, "tile_overlap": 32})
    assert response.status_code == 201, response.json
    item = _wait(client, response.json["item_ids"][0])
    assert item["status"] == "completed", item
    (image_id,) = client.get(f"{API}/history/{response.json['generation_ids'][0]}").json["image_ids"]
    record = client.get(f"{API}/images/{image_id}").json
    assert (record["width"], record["height"]) == (128, 128)
    meta = client.get(f"{API}/images/{image_id}/metadata").json
    assert meta["upscale"]["tiles"] == 9 and meta["mode"] == "upscale"
    # hires fix through the queue, recalled with its upscaler
    empty_box = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "a photo", "steps": 4, "seed": 1, "hires_fix": {"scale": 2, "strength": 0.5, "upscaler": "demo-upscaler-x2"}}}
    response = client.post(f"{API}/canvas/jobs", json={"document": empty_box})
    assert response.status_code == 201, response.json
    assert _wait(client, response.json["item_ids"][0])["status"] == "completed"
    (image_id,) = client.get(f"{API}/history/{response.json['generation_ids'][0]}").json["image_ids"]
    recalled = client.get(f"{API}/images/{image_id}/recall").json
    assert recalled["hires_fix"]["upscaler"] == "demo-upscaler-x2" and recalled["hires_fix"]["installed"] is True
    assert recalled["hires_fix"]["scale"] == 2 and recalled["hires_fix"]["strength"] == 0.5
