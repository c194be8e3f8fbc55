"""invoke_core.compile: modes, masks and images from hand-made canvases; validation messages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from invoke_core.compile import compile_canvas, validate_bbox_size
from invoke_core.errors import InvalidCanvasError
from invoke_core.types import (
    Bounds,
    CanvasDocument,
    ControlSettings,
    GenerationParams,
    InfillMethod,
    Layer,
    LayerKind,
    Mode,
    RegionPrompt,
)

RASTER, MASK = LayerKind.RASTER, LayerKind.INPAINT_MASK
REGION, CONTROL = LayerKind.REGIONAL_GUIDANCE, LayerKind.CONTROL
BBOX = Bounds(0, 0, 16, 8)


def doc(*layers: Layer, bbox: Bounds = BBOX, **params: Any) -> CanvasDocument:
    params.setdefault("prompt", "a red fox")
    return CanvasDocument(bbox=bbox, layers=layers, params=GenerationParams(**params))


def solid(h: int, w: int, rgb: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    px = np.empty((h, w, 4), np.uint8)
    px[:] = (*rgb, alpha)
    return px


def noise(h: int, w: int, seed: int, alpha: int = 255) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[..., 3] = alpha
    return px


# --- modes ----------------------------------------------------------------------------------------


def test_empty_canvas_is_txt2img() -> None:
    req = compile_canvas(doc())
    assert req.mode is Mode.TXT2IMG
    assert req.init_image is None and req.original is None and req.mask is None
    assert req.size == (16, 8) and req.bbox == BBOX


def test_masks_are_ignored_without_paint() -> None:
    req = compile_canvas(doc(Layer("m", MASK, 0, 0, solid(8, 16, (0, 0, 0)))))
    assert req.mode is Mode.TXT2IMG and req.mask is None


def test_hidden_raster_layer_is_ignored() -> None:
    req = compile_canvas(doc(Layer("r", RASTER, 0, 0, noise(8, 16, 1), visible=False)))
    assert req.mode is Mode.TXT2IMG


def test_txt2img_needs_a_prompt() -> None:
    with pytest.raises(InvalidCanvasError, match="a prompt is required for text-to-image"):
        compile_canvas(doc(prompt="   "))


def test_fully_covered_bbox_is_img2img_and_allows_an_empty_prompt() -> None:
    px = noise(12, 20, 2)
    req = compile_canvas(doc(Layer("r", RASTER, -2, -3, px), prompt=""))
    assert req.mode is Mode.IMG2IMG and req.mask is None
    np.testing.assert_array_equal(req.init_image, px[3:11, 2:18, :3])
    np.testing.assert_array_equal(req.original, px[3:11, 2:18])
    assert req.init_image.shape == (8, 16, 3) and req.init_image.dtype == np.uint8


def test_inpaint_mask_on_opaque_paint_is_inpaint() -> None:
    mask_px = np.zeros((4, 6, 4), np.uint8)
    mask_px[1:3, 2:5, 3] = 204
    layers = (
        Layer("r", RASTER, 0, 0, noise(8, 16, 3)),
        Layer("m", MASK, 10, 5, mask_px, opacity=0.5),  # bottom-right part falls outside the bbox
        Layer("hidden", MASK, 0, 0, solid(8, 16, (0, 0, 0)), visible=False),
    )
    req = compile_canvas(doc(*layers))
    assert req.mode is Mode.INPAINT
    expected = np.zeros((8, 16), np.float32)
    for y in range(8):
        for x in range(16):
            ly, lx = y - 5, x - 10
            if 0 <= ly < 4 and 0 <= lx < 6:
                expected[y, x] = mask_px[ly, lx, 3] / 255 * 0.5
    np.testing.assert_allclose(req.mask, expected, atol=1e-6)
    assert req.mask[6, 12] == pytest.approx(0.4)
    np.testing.assert_array_equal(req.init_image, layers[0].pixels[..., :3])


def test_partly_painted_bbox_is_outpaint() -> None:
    px = noise(8, 10, 4)
    px[0, 4, 3] = 51  # one soft pixel, at bbox (0, 0)
    mask_px = np.zeros((8, 16, 4), np.uint8)
    mask_px[7, 0, 3] = 255
    req = compile_canvas(
        doc(
            Layer("r", RASTER, -4, 0, px),  # covers x 0..5 of the bbox
            Layer("m", MASK, 0, 0, mask_px),
            infill=InfillMethod.COLOR,
            infill_color=(1, 2, 3),
            prompt="",
        )
    )
    assert req.mode is Mode.OUTPAINT
    expected = np.zeros((8, 16), np.float32)
    expected[:, 6:] = 1  # unpainted
    expected[0, 0] = 1 - 51 / 255  # soft paint: partly repainted
    expected[7, 0] = 1  # the inpaint mask still counts
    np.testing.assert_allclose(req.mask, expected, atol=1e-6)
    np.testing.assert_array_equal(req.original[:, :6], px[:, 4:])
    assert not req.original[:, 6:].any()
    np.testing.assert_array_equal(req.init_image[1:, :6], px[1:, 4:, :3])  # opaque pixels exact
    assert (req.init_image[:, 6:] == (1, 2, 3)).all()  # holes infilled


def test_outpaint_with_each_infill_keeps_paint_exact() -> None:
    px = noise(8, 8, 5)
    for method in InfillMethod:
        req = compile_canvas(doc(Layer("r", RASTER, 0, 0, px), infill=method))
        assert req.mode is Mode.OUTPAINT
        np.testing.assert_array_equal(req.init_image[:, :8], px[..., :3])


def test_negative_bbox_and_layers_composited_with_opacity() -> None:
    bbox = Bounds(-16, -8, 16, 8)
    bottom = Layer("bottom", RASTER, -20, -10, solid(20, 30, (200, 100, 0)))
    top = Layer("top", RASTER, -16, -8, solid(4, 4, (0, 0, 250)), opacity=0.4)
    req = compile_canvas(doc(bottom, top, bbox=bbox))
    assert req.mode is Mode.IMG2IMG
    expected = np.empty((8, 16, 3))
    expected[:] = (200, 100, 0)
    expected[:4, :4] = np.array((0, 0, 250)) * 0.4 + np.array((200, 100, 0)) * 0.6
    assert np.abs(req.init_image.astype(float) - expected).max() <= 0.5


def test_request_arrays_are_read_only() -> None:
    req = compile_canvas(doc(Layer("r", RASTER, 0, 0, noise(8, 8, 6))))
    for array in (req.init_image, req.original, req.mask):
        assert not array.flags.writeable


# --- size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bbox, scale, size",
    [
        (Bounds(0, 0, 64, 48), 1.5, (96, 72)),
        (Bounds(0, 0, 40, 40), 0.5, (24, 24)),  # 20 -> nearest multiple of 8, half up
        (Bounds(0, 0, 16, 8), 0.25, (8, 8)),  # at least 8
        (Bounds(0, 0, 1024, 1024), 4, (4096, 4096)),
    ],
)
def test_size_is_scaled_and_rounded_to_multiples_of_8(bbox: Bounds, scale: float, size: tuple[int, int]) -> None:
    assert compile_canvas(doc(bbox=bbox, scale=scale)).size == size


def test_size_over_4096_is_an_error() -> None:
    with pytest.raises(InvalidCanvasError, match=r"5120x24 \(bbox x scale 2.5\) exceeds 4096"):
        compile_canvas(doc(bbox=Bounds(0, 0, 2048, 8), scale=2.5))


# --- regions and controls -------------------------------------------------------------------------


def test_regions_and_controls() -> None:
    region_px = np.zeros((8, 8, 4), np.uint8)
    region_px[:, :4, 3] = 255
    control_px = solid(8, 8, (100, 200, 50), alpha=128)
    settings = ControlSettings(model="canny")
    layers = (
        Layer("reg", REGION, 4, 0, region_px, opacity=0.5, region=RegionPrompt("a cat", "blurry")),
        Layer("reg-hidden", REGION, 0, 0, region_px, visible=False),  # no prompt, but hidden: fine
        Layer("ctl", CONTROL, 10, 0, control_px, control=settings),
    )
    req = compile_canvas(doc(*layers))
    assert req.mode is Mode.TXT2IMG
    (region,) = req.regions
    assert (region.prompt, region.negative_prompt) == ("a cat", "blurry")
    expected = np.zeros((8, 16), np.float32)
    expected[:, 4:8] = 0.5
    np.testing.assert_allclose(region.mask, expected)
    (control,) = req.controls
    assert control.settings == settings and control.image.shape == (8, 16, 3)
    assert not control.image[:, :10].any()
    over_black = [round(c * 128 / 255) for c in (100, 200, 50)]
    assert (np.abs(control.image[:, 10:].astype(int) - over_black) <= 1).all()


def test_region_needs_a_prompt() -> None:
    layer = Layer("reg", REGION, 0, 0, solid(8, 8, (0, 0, 0)), region=RegionPrompt(" "))
    with pytest.raises(InvalidCanvasError, match="'reg' needs a prompt"):
        compile_canvas(doc(layer))
    with pytest.raises(InvalidCanvasError, match="'reg' needs a prompt"):
        compile_canvas(doc(replace(layer, region=None)))


def test_control_needs_settings() -> None:
    with pytest.raises(InvalidCanvasError, match="control layer 'ctl'"):
        compile_canvas(doc(Layer("ctl", CONTROL, 0, 0, solid(8, 8, (0, 0, 0)))))


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width, height, message",
    [
        (130, 64, "bbox width 130 is not a multiple of 8: use 128 or 136"),
        (64, 60, "bbox height 60 is not a multiple of 8: use 56 or 64"),
        (4, 64, "bbox width 4 is not a multiple of 8: use 8"),
        (0, 64, "bbox width 0 must be positive"),
        (64, -8, "bbox height -8 must be positive"),
    ],
)
def test_bbox_size_must_be_positive_multiple_of_8(width: int, height: int, message: str) -> None:
    with pytest.raises(InvalidCanvasError) as info:
        validate_bbox_size(width, height)
    assert str(info.value).startswith(message)
    with pytest.raises(InvalidCanvasError, match=message):
        compile_canvas(doc(bbox=Bounds(0, 0, width, height)))


def test_valid_bbox_sizes_pass() -> None:
    validate_bbox_size(8, 4096)


@pytest.mark.parametrize(
    "pixels, match",
    [
        (np.zeros((8, 8, 4), np.float32), "'bad': pixels must be an HxWx4 uint8"),
        (np.zeros((8, 8, 3), np.uint8), "'bad': pixels must be an HxWx4 uint8"),
        (np.zeros((8, 8), np.uint8), "'bad': pixels must be an HxWx4 uint8"),
    ],
)
def test_bad_layer_pixels(pixels: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidCanvasError, match=match):
        compile_canvas(doc(Layer("bad", RASTER, 0, 0, pixels)))


@pytest.mark.parametrize("opacity", [-0.1, 1.5, float("nan")])
def test_bad_opacity(opacity: float) -> None:
    with pytest.raises(InvalidCanvasError, match=r"'o': opacity must be in \[0, 1\]"):
        compile_canvas(doc(Layer("o", RASTER, 0, 0, noise(8, 8, 7), opacity=opacity)))


def test_duplicate_layer_ids() -> None:
    layers = (Layer("a", RASTER, 0, 0, noise(8, 8, 8)), Layer("a", MASK, 0, 0, noise(8, 8, 9)))
    with pytest.raises(InvalidCanvasError, match="duplicate layer id 'a'"):
        compile_canvas(doc(*layers))


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 0),
        ("steps", 501),
        ("steps", 2.5),
        ("cfg_scale", -1),
        ("cfg_scale", 50.5),
        ("batch_size", 0),
        ("batch_size", 65),
        ("strength", 0),
        ("strength", 1.01),
        ("mask_blur", -1),
        ("mask_blur", 257),
        ("scale", 0.2),
        ("scale", 4.5),
        ("seed", -1),
        ("seed", 2**32),
    ],
)
def test_params_out_of_range(field: str, value: float) -> None:
    with pytest.raises(InvalidCanvasError, match=f"^{field} must be .* got {value!r}$"):
        compile_canvas(doc(**{field: value}))


def test_params_at_the_limits_pass() -> None:
    limits = dict(steps=500, cfg_scale=50, batch_size=64, strength=1, mask_blur=256, seed=2**32 - 1)
    assert compile_canvas(doc(**limits)).mode is Mode.TXT2IMG
    assert compile_canvas(doc(steps=1, cfg_scale=0, batch_size=1, mask_blur=0, seed=0)).mode is Mode.TXT2IMG


def test_steps_times_strength_below_one() -> None:
    painted = Layer("r", RASTER, 0, 0, noise(8, 16, 10))
    with pytest.raises(InvalidCanvasError, match="raise steps or strength"):
        compile_canvas(doc(painted, steps=3, strength=0.3))
    assert compile_canvas(doc(painted, steps=4, strength=0.25)).mode is Mode.IMG2IMG
    assert compile_canvas(doc(steps=1, strength=0.1)).mode is Mode.TXT2IMG  # strength unused there
