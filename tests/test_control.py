"""ControlNet: the preprocessors against independent OpenCV/numpy computations, and control layers end to
end on the real diffusers ControlNet pipelines with the demo ControlNet (CPU, 64x64, 3 steps)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import rgba

from invoke_core.compile import compile_canvas
from invoke_core.errors import GenerationCancelled, InvalidCanvasError, UnsupportedError
from invoke_core.preprocess import PREPROCESSORS, preprocess
from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LayerKind

# --- preprocessors --------------------------------------------------------------------------------


def drawing(light_ground: bool = True) -> np.ndarray:
    """Dark shapes on a light ground (or the reverse) with a gradient and a little noise: edges of every kind."""
    h, w = 64, 80
    img = np.full((h, w, 3), 235 if light_ground else 20, np.uint8)
    ink = (20, 30, 40) if light_ground else (230, 220, 210)
    cv2.rectangle(img, (8, 8), (30, 28), ink, -1)
    cv2.circle(img, (55, 40), 12, (200, 40, 40), -1)  # a red disc: a colour edge
    cv2.line(img, (5, 55), (75, 45), ink, 2)
    img[:, :, 2] = np.clip(img[:, :, 2].astype(int) + np.arange(w)[None, :] // 4, 0, 255)
    noise = np.random.default_rng(0).integers(-3, 4, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def three(single: np.ndarray) -> np.ndarray:
    return np.dstack([single] * 3).astype(np.uint8)


def expected_soft_edge(img: np.ndarray, sigma: float) -> np.ndarray:
    g = cv2.GaussianBlur(gray(img).astype(np.float32), (0, 0), sigma)
    kx = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], np.float32)  # Scharr, written out
    mag = np.hypot(cv2.filter2D(g, -1, kx), cv2.filter2D(g, -1, kx.T))
    return three(np.rint(mag / mag.max() * 255))


def expected_lineart(img: np.ndarray, block: int, c: int) -> np.ndarray:
    g = gray(img)
    mean = cv2.boxFilter(g, -1, (block, block), borderType=cv2.BORDER_REPLICATE)  # uint8 local mean
    return three(np.where(g.astype(int) - mean.astype(int) <= -c, 255, 0))


def expected_scribble(img: np.ndarray, thickness: int) -> np.ndarray:
    g = gray(img)
    otsu, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strokes = g <= otsu
    if strokes.mean() > 0.5:
        strokes = ~strokes
    # dilation by a round pen of diameter `thickness`, as a union of shifted copies
    r = thickness // 2
    grown = np.zeros_like(strokes)
    padded = np.pad(strokes, r)
    h, w = strokes.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= thickness * thickness / 4:
                grown |= padded[r + dy : r + dy + h, r + dx : r + dx + w]
    return three(grown * 255)


def expected_color_map(img: np.ndarray, tile: int) -> np.ndarray:
    h, w = img.shape[:2]
    bh, bw = h // tile, w // tile
    blocks = img[: bh * tile, : bw * tile].astype(np.float64).reshape(bh, tile, bw, tile, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(np.rint(blocks), tile, axis=0), tile, axis=1).astype(np.uint8)


def expected_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    size = round(sigma * 3 * 2 + 1) | 1  # OpenCV's kernel size for 8-bit images
    k = cv2.getGaussianKernel(size, sigma).astype(np.float64)
    out = cv2.sepFilter2D(img.astype(np.float64), -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    return np.rint(out).clip(0, 255).astype(np.uint8)


def expected_tile(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    small = img.astype(np.float64).reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
    return cv2.resize(np.rint(small).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


# (name, options, expected, largest allowed difference: 1 where float sums or fixed-point rounding may differ)
CASES = [
    ("none", {}, lambda i: i, 0),
    ("canny", {}, lambda i: three(cv2.Canny(i, 100, 200)), 0),
    ("canny", {"low": 10, "high": 60}, lambda i: three(cv2.Canny(i, 10, 60)), 0),
    ("soft_edge", {}, lambda i: expected_soft_edge(i, 1.5), 1),
    ("lineart", {}, lambda i: expected_lineart(i, 9, 6), 0),
    ("scribble", {}, lambda i: expected_scribble(i, 3), 0),
    ("scribble", {"thickness": 5}, lambda i: expected_scribble(i, 5), 0),
    ("threshold", {"value": 100}, lambda i: three((gray(i) > 100) * 255), 0),
    ("tile", {}, lambda i: expected_tile(i, 4), 1),
    ("blur", {"sigma": 2}, lambda i: expected_blur(i, 2), 1),
    ("color_map", {"tile": 16}, lambda i: expected_color_map(i, 16), 1),
    ("color_map", {}, lambda i: np.broadcast_to(np.rint(i.reshape(-1, 3).mean(0)), i.shape).astype(np.uint8), 1),
]


@pytest.mark.parametrize("light_ground", [True, False])
@pytest.mark.parametrize(
    ("name", "options", "expected", "tolerance"), CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES]
)
def test_preprocessor_matches_an_independent_computation(name, options, expected, tolerance, light_ground):
    img = drawing(light_ground)
    if name == "color_map" and not options:
        img = img[:, :64]  # one 64-pixel block: the mean colour
    out = preprocess(img, name, **options)
    want = expected(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - want.astype(int))
    assert diff.max() <= tolerance, f"{np.count_nonzero(diff > tolerance)} values differ, by up to {diff.max()}"
    if name not in ("none", "tile", "blur", "color_map"):
        assert set(np.unique(out)) != {0}, "the map found no feature at all"


def test_every_preprocessor_is_covered_and_maps_are_white_on_black():
    assert {c[0] for c in CASES} == set(PREPROCESSORS)
    for name in ("canny", "lineart", "scribble"):
        out = preprocess(drawing(), name)
        assert set(np.unique(out)) <= {0, 255} and (out == 0).mean() > 0.5  # sparse white lines on black


def test_preprocessor_errors_are_clear():
    img = drawing()
    with pytest.raises(InvalidCanvasError, match="unknown preprocessor 'depth_anything'.*canny.*color_map"):
        preprocess(img, "depth_anything")
    with pytest.raises(InvalidCanvasError, match="no option 'lo'.*low, high"):
        preprocess(img, "canny", lo=3)
    with pytest.raises(InvalidCanvasError, match="out of range"):
        preprocess(img, "lineart", block_size=4)
    with pytest.raises(InvalidCanvasError, match="HxWx3 uint8"):
        preprocess(np.zeros((8, 8, 4), np.uint8), "canny")


# --- end to end -----------------------------------------------------------------------------------

SIZE = 64
CONTROL_PIXELS = rgba(SIZE, SIZE, seed=11)
OTHER_PIXELS = rgba(SIZE, SIZE, seed=12)


def params(**kw) -> GenerationParams:
    base = {
        "prompt": "a lighthouse at dusk",
        "steps": 3,
        "seed": 7,
        "cfg_scale": 5.0,
        "mask_blur": 0,
        "infill": "color",
    }
    base.update(kw)
    return GenerationParams(**base)


def control(layer_id="ctl", pixels=CONTROL_PIXELS, model="demo-controlnet", **settings) -> Layer:
    return Layer(layer_id, LayerKind.CONTROL, 0, 0, pixels, control=ControlSettings(model, **settings))


def mask_layer(box: tuple[int, int, int, int]) -> Layer:
    pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
    y0, y1, x0, x1 = box
    pixels[y0:y1, x0:x1, 3] = 255
    return Layer("mask", LayerKind.INPAINT_MASK, 0, 0, pixels)


def run1(engine, layers=(), **kw):
    document = CanvasDocument(Bounds(0, 0, SIZE, SIZE), tuple(layers), params(**kw))
    return engine.run(compile_canvas(document))[0]


@pytest.fixture(scope="module")
def plain(engine):
    return run1(engine)


@pytest.fixture(scope="module")
def controlled(engine):
    return run1(engine, [control()])


def test_controlnet_txt2img_is_deterministic_and_follows_the_control_image(engine, plain, controlled):
    again = run1(engine, [control()])
    other = run1(engine, [control(pixels=OTHER_PIXELS)])
    assert controlled.image.shape == (SIZE, SIZE, 3)
    assert np.array_equal(controlled.image, again.image)
    assert not np.array_equal(controlled.image, plain.image)
    assert not np.array_equal(controlled.image, other.image)
    (meta,) = controlled.metadata["controls"]
    assert meta["model"]["id"] == "demo-controlnet" and len(meta["model"]["hash"]) == 64
    assert {k: meta[k] for k in ("preprocessor", "weight", "begin", "end", "mode")} == {
        "preprocessor": "none",
        "weight": 1.0,
        "begin": 0.0,
        "end": 1.0,
        "mode": "balanced",
    }
    assert "controls" not in plain.metadata  # a plain job's metadata is as before
    from invoke_core.metadata import a1111_parameters

    text = a1111_parameters(controlled.metadata)
    assert 'ControlNet 0: "Module: none, Model: Demo ControlNet (tiny) [' in text and "Control Mode: Balanced" in text


def test_weight_zero_gives_the_pixels_of_no_controlnet(engine, plain):
    # diffusers scales the residuals by the weight; x + 0 is exact, so the UNet sees the plain inputs.
    assert np.array_equal(run1(engine, [control(weight=0.0)]).image, plain.image)
    assert not np.array_equal(run1(engine, [control(weight=0.5)]).image, plain.image)


def test_begin_and_end_limit_the_steps(engine, plain, controlled):
    first_step = run1(engine, [control(begin=0.0, end=0.34)])  # step 1 of 3 only
    assert not np.array_equal(first_step.image, controlled.image)
    assert not np.array_equal(first_step.image, plain.image)
    # A range no whole step falls into (steps 2/3..1 start at 0.67) leaves the job plain.
    assert np.array_equal(run1(engine, [control(begin=0.9, end=1.0)]).image, plain.image)
    assert first_step.metadata["controls"][0]["end"] == 0.34


def test_two_controlnets(engine, controlled):
    second = control("ctl2", pixels=OTHER_PIXELS, preprocessor="canny", weight=0.7)
    both = run1(engine, [control(), second])
    only_second = run1(engine, [second])
    assert not np.array_equal(both.image, controlled.image)
    assert not np.array_equal(both.image, only_second.image)
    assert [c["preprocessor"] for c in both.metadata["controls"]] == ["none", "canny"]
    assert [c["weight"] for c in both.metadata["controls"]] == [1.0, 0.7]
    # the second at weight 0 leaves the first alone
    assert np.array_equal(
        run1(engine, [control(), control("ctl2", pixels=OTHER_PIXELS, weight=0.0)]).image, controlled.image
    )


def test_preprocessor_changes_what_the_controlnet_sees(engine, controlled):
    edged = run1(engine, [control(preprocessor="canny")])
    assert not np.array_equal(edged.image, controlled.image)


def test_control_modes(engine, controlled):
    prompt = run1(engine, [control(mode="prompt")])
    ctl = run1(engine, [control(mode="control")])
    assert not np.array_equal(prompt.image, controlled.image)
    assert not np.array_equal(ctl.image, controlled.image)
    assert not np.array_equal(prompt.image, ctl.image)
    assert np.array_equal(run1(engine, [control()]).image, controlled.image)  # the prompt-mode hook is gone
    assert ctl.metadata["controls"][0]["mode"] == "control"
    with pytest.raises(UnsupportedError, match="control mode 'control'"):
        run1(engine, [control(mode="control"), control("ctl2")])
    with pytest.raises(InvalidCanvasError, match="unknown control mode 'strong'"):
        ControlSettings("demo-controlnet", mode="strong")


@pytest.mark.parametrize("model", ["demo", "demo-inpaint"])
def test_controlnet_inpaint_keeps_every_pixel_outside_the_mask(engine, model):
    init = rgba(SIZE, SIZE, seed=2)
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer((16, 40, 8, 48))]
    result = run1(engine, [*layers, control()], model=model, strength=1.0)
    without = run1(engine, layers, model=model, strength=1.0)
    zero = run1(engine, [*layers, control(weight=0.0)], model=model, strength=1.0)
    assert result.metadata["mode"] == "inpaint"
    outside = np.ones((SIZE, SIZE), bool)
    outside[16:40, 8:48] = False
    assert np.array_equal(result.image[outside], init[..., :3][outside])
    assert not np.array_equal(result.image[~outside], without.image[~outside])
    assert np.array_equal(zero.image, without.image)


def test_controlnet_img2img_and_scaled_generation(engine):
    init = rgba(SIZE, SIZE, seed=3)
    img = [Layer("img", LayerKind.RASTER, 0, 0, init)]
    result = run1(engine, [*img, control()], strength=0.7)
    assert result.metadata["mode"] == "img2img"
    assert not np.array_equal(result.image, run1(engine, img, strength=0.7).image)
    small = run1(engine, [control()], scale=0.5)  # control image resized to the 32x32 generation size
    assert small.image.shape == (SIZE, SIZE, 3) and small.metadata["generation_size"] == [32, 32]


def test_progress_and_cancel_with_a_controlnet(engine):
    seen = []
    with pytest.raises(GenerationCancelled):
        engine.run(
            compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), (control(),), params(steps=6))),
            on_progress=seen.append,
            is_cancelled=lambda: len(seen) >= 2,
        )
    assert [p.step for p in seen] == [1, 2]


def test_second_controlnet_job_loads_nothing(data_root):
    from invoke_core.engine import Engine

    fresh = Engine(root=data_root, device="cpu")
    run1(fresh, [control()])
    run1(fresh, [control(weight=0.5)], seed=9)
    stats = fresh.cache.stats()
    assert stats.loads == 2 and stats.hits == 2  # the main model and the ControlNet, once each


def test_bad_control_settings_are_clear_errors(engine):
    with pytest.raises(InvalidCanvasError, match="control layer 'ctl'.*unknown preprocessor 'hed'.*canny"):
        run1(engine, [control(preprocessor="hed")])
    with pytest.raises(InvalidCanvasError, match="model 'demo' is a main model, not a ControlNet"):
        run1(engine, [control(model="demo")])
    with pytest.raises(InvalidCanvasError, match="begin 0.5 must be below end 0.5"):
        run1(engine, [control(begin=0.5, end=0.5)])
    with pytest.raises(InvalidCanvasError, match="weight must be a number in"):
        run1(engine, [control(weight=3.0)])
    hidden = Layer(
        "ctl",
        LayerKind.CONTROL,
        0,
        0,
        CONTROL_PIXELS,
        visible=False,
        control=ControlSettings("demo", preprocessor="hed"),
    )
    assert "controls" not in run1(engine, [hidden]).metadata  # hidden control layers are ignored


def test_request_built_without_compile_is_checked_too(engine):
    from invoke_core.types import ControlInput, GenerationRequest

    request = compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), (), params()))
    bad = ControlInput(CONTROL_PIXELS[..., :3], ControlSettings("demo-controlnet", preprocessor="hed"))
    with pytest.raises(InvalidCanvasError, match="control 1: unknown preprocessor"):
        engine.run(GenerationRequest(request.mode, request.params, request.bbox, request.size, controls=(bad,)))


def test_sdxl_controlnet_and_family_mismatch(engine, sdxl_folder, sdxl_inpaint_folder, tmp_path):
    from invoke_core.demo import build_controlnet_demo
    from invoke_core.model_install import install_model

    folder = build_controlnet_demo(tmp_path / "tiny-sdxl-controlnet", sdxl_folder)  # ControlNetModel.from_unet
    main = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl for control")
    inpaint = install_model(engine.registry, str(sdxl_inpaint_folder), name="tiny sdxl inpaint for control")
    cn = install_model(engine.registry, str(folder), name="tiny sdxl controlnet")
    try:
        assert (cn.family, cn.kind) == ("sdxl", "controlnet")
        with pytest.raises(InvalidCanvasError, match=f"ControlNet '{cn.id}' is for sdxl, the model 'demo' is sd-1"):
            run1(engine, [control(model=cn.id)], model="demo")  # (the installed sdxl is now the default)
        with pytest.raises(
            InvalidCanvasError, match=f"ControlNet 'demo-controlnet' is for sd-1, the model '{main.id}' is sdxl"
        ):
            run1(engine, [control()], model=main.id)
        plain_xl = run1(engine, model=main.id)
        controlled_xl = run1(engine, [control(model=cn.id)], model=main.id)
        assert controlled_xl.metadata["controls"][0]["model"]["family"] == "sdxl"
        assert not np.array_equal(plain_xl.image, controlled_xl.image)
        assert np.array_equal(run1(engine, [control(model=cn.id, weight=0.0)], model=main.id).image, plain_xl.image)
        init = rgba(SIZE, SIZE, seed=5)
        img = Layer("img", LayerKind.RASTER, 0, 0, init)
        assert run1(engine, [img, control(model=cn.id)], model=main.id, strength=0.7).metadata["mode"] == "img2img"
        for model in (main.id, inpaint.id):  # 4- and 9-channel UNets
            result = run1(engine, [img, mask_layer((0, 32, 0, 64)), control(model=cn.id)], model=model, strength=1.0)
            assert np.array_equal(result.image[32:], init[32:, :, :3])
    finally:
        engine.registry.remove(inpaint.id)
        engine.registry.remove(main.id)
        engine.registry.remove(cn.id)
