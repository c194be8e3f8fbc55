"""invoke_core.masks: expected values are computed here by explicit loops on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from invoke_core.errors import InvalidImageError
from invoke_core.masks import (
    composite_layers,
    coverage,
    mask_from_layers,
    paste_back,
    paste_mask,
    pipeline_mask,
    resize_image,
    resize_mask,
)
from invoke_core.types import Bounds, Layer, LayerKind

RASTER, MASK = LayerKind.RASTER, LayerKind.INPAINT_MASK


def rgba(h: int, w: int, seed: int, alpha: int | None = None) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    if alpha is not None:
        px[..., 3] = alpha
    return px


def layer_pixel(layer: Layer, cx: int, cy: int) -> np.ndarray | None:
    """The layer's RGBA at canvas point (cx, cy), or None outside it."""
    h, w = layer.pixels.shape[:2]
    lx, ly = cx - layer.x, cy - layer.y
    if 0 <= lx < w and 0 <= ly < h:
        return layer.pixels[ly, lx].astype(np.float64)
    return None


def reference_composite(layers: list[Layer], bbox: Bounds) -> np.ndarray:
    """Straight-alpha "over", pixel by pixel, in float64."""
    out = np.zeros((bbox.height, bbox.width, 4), np.float64)
    for by in range(bbox.height):
        for bx in range(bbox.width):
            color, a_out = np.zeros(3), 0.0
            for layer in layers:
                if not layer.visible or layer.kind != RASTER:
                    continue
                px = layer_pixel(layer, bbox.x + bx, bbox.y + by)
                if px is None:
                    continue
                a = px[3] / 255 * layer.opacity
                new_a = a + a_out * (1 - a)
                if new_a > 0:
                    color = (px[:3] * a + color * a_out * (1 - a)) / new_a
                a_out = new_a
            out[by, bx, :3] = color if round(a_out * 255) > 0 else 0
            out[by, bx, 3] = a_out * 255
    return out


# --- composite ------------------------------------------------------------------------------------


def test_single_opaque_layer_is_copied_exactly() -> None:
    px = rgba(6, 5, 1, alpha=255)
    layer = Layer("a", RASTER, 2, 1, px)
    out = composite_layers([layer], Bounds(0, 0, 8, 8))
    assert out.shape == (8, 8, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1:7, 2:7], px)
    untouched = np.ones((8, 8), bool)
    untouched[1:7, 2:7] = False
    assert not out[untouched].any()  # unpainted: RGBA all 0


def test_layers_partly_outside_and_at_negative_coordinates() -> None:
    bbox = Bounds(-4, -3, 8, 8)
    layers = [
        Layer("left", RASTER, -9, -5, rgba(6, 7, 2, alpha=255)),  # sticks out top-left
        Layer("right", RASTER, 2, 1, rgba(10, 9, 3, alpha=255)),  # sticks out bottom-right
        Layer("far", RASTER, 100, -100, rgba(4, 4, 4, alpha=255)),  # wholly outside
    ]
    out = composite_layers(layers, bbox)
    np.testing.assert_array_equal(out, np.rint(reference_composite(layers, bbox)).astype(np.uint8))
    # Spot check by hand: canvas (-4, -3) lies in "left" at (5, 2).
    np.testing.assert_array_equal(out[0, 0], layers[0].pixels[2, 5])


def test_wholly_outside_layer_gives_empty_composite() -> None:
    out = composite_layers([Layer("a", RASTER, -20, -20, rgba(8, 8, 5, alpha=255))], Bounds(0, 0, 8, 8))
    assert not out.any()


def test_over_with_opacity_and_partial_alpha() -> None:
    bbox = Bounds(0, 0, 8, 8)
    layers = [
        Layer("bottom", RASTER, 0, 0, rgba(8, 8, 6)),
        Layer("middle", RASTER, 2, 2, rgba(5, 5, 7), opacity=0.6),
        Layer("top", RASTER, -1, 3, rgba(4, 9, 8), opacity=0.35),
    ]
    out = composite_layers(layers, bbox).astype(int)
    ref = reference_composite(layers, bbox)
    assert np.abs(out[..., 3] - ref[..., 3]).max() <= 1
    painted = ref[..., 3] >= 8  # colour of nearly transparent pixels is ill-conditioned
    assert np.abs(out[..., :3] - ref[..., :3])[painted].max() <= 1


def test_hidden_and_non_raster_layers_are_ignored() -> None:
    base = Layer("base", RASTER, 0, 0, rgba(8, 8, 9, alpha=255))
    hidden = Layer("hidden", RASTER, 0, 0, rgba(8, 8, 10, alpha=255), visible=False)
    mask = Layer("mask", MASK, 0, 0, rgba(8, 8, 11, alpha=255))
    out = composite_layers([base, hidden, mask], Bounds(0, 0, 8, 8))
    np.testing.assert_array_equal(out, base.pixels)


def test_zero_opacity_layer_is_transparent() -> None:
    out = composite_layers([Layer("a", RASTER, 0, 0, rgba(8, 8, 12, alpha=255), opacity=0.0)], Bounds(0, 0, 8, 8))
    assert not out.any()


def test_composite_rejects_bad_pixels() -> None:
    bad = Layer("bad", RASTER, 0, 0, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidImageError, match="'bad'"):
        composite_layers([bad], Bounds(0, 0, 8, 8))


# --- coverage and masks ---------------------------------------------------------------------------


def test_coverage_is_alpha_times_opacity_cropped() -> None:
    px = rgba(5, 6, 13)
    layer = Layer("m", MASK, -2, 5, px, opacity=0.5)
    bbox = Bounds(0, 0, 8, 8)
    cov = coverage(layer, bbox)
    assert cov.shape == (8, 8) and cov.dtype == np.float32
    expected = np.zeros((8, 8))
    for by in range(8):
        for bx in range(8):
            p = layer_pixel(layer, bx, by)
            if p is not None:
                expected[by, bx] = p[3] / 255 * 0.5
    np.testing.assert_allclose(cov, expected, atol=1e-6)


def test_mask_from_layers_is_max_of_visible_masks() -> None:
    bbox = Bounds(0, 0, 8, 8)
    a = np.zeros((8, 8, 4), np.uint8)
    a[:4, :, 3] = 200
    b = np.zeros((8, 8, 4), np.uint8)
    b[2:6, :, 3] = 100
    c = np.full((8, 8, 4), 255, np.uint8)
    layers = [
        Layer("a", MASK, 0, 0, a),
        Layer("b", MASK, 0, 0, b),
        Layer("hidden", MASK, 0, 0, c, visible=False),
        Layer("raster", RASTER, 0, 0, c),
    ]
    mask = mask_from_layers(layers, bbox)
    expected = np.zeros((8, 8), np.float32)
    expected[0:4] = 200 / 255
    expected[4:6] = 100 / 255
    np.testing.assert_allclose(mask, expected, atol=1e-6)
    assert not mask_from_layers([], bbox).any()


# --- paste mask and paste-back --------------------------------------------------------------------


def distance_to_mask(mask: np.ndarray) -> np.ndarray:
    """Brute-force Euclidean distance from each pixel to the nearest mask > 0 pixel (inf if none)."""
    ys, xs = np.nonzero(mask > 0)
    gy, gx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
    if ys.size == 0:
        return np.full(mask.shape, np.inf)
    d = np.sqrt((gy[..., None] - ys) ** 2 + (gx[..., None] - xs) ** 2)
    return d.min(axis=-1)


masks = st.integers(1, 20).flatmap(
    lambda h: st.integers(1, 20).flatmap(
        lambda w: arrays(
            np.float32,
            (h, w),
            elements=st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 1.0]).map(np.float32),
        )
    )
)


@settings(max_examples=80, deadline=None)
@given(mask=masks, blur=st.integers(0, 6))
def test_paste_mask_grows_outward_only_and_stops_at_blur(mask: np.ndarray, blur: int) -> None:
    pm = paste_mask(mask, blur)
    assert pm.shape == mask.shape and pm.dtype == np.float32
    assert (pm >= mask).all() and (pm <= 1).all()
    assert not pm[distance_to_mask(mask) > blur].any()
    if blur == 0:
        np.testing.assert_array_equal(pm, mask)
    np.testing.assert_array_equal(pipeline_mask(mask, blur), (pm > 0).astype(np.float32))


def test_paste_mask_has_a_gradient_edge() -> None:
    mask = np.zeros((40, 40), np.float32)
    mask[:, :20] = 1
    pm = paste_mask(mask, 8)
    row = pm[20, 20:30]  # row[k] is k + 1 pixels from the mask
    assert (np.diff(row) <= 0).all() and 0 < row[0] < 1 and row[7] > 0 and row[8] == 0


@st.composite
def paste_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    channels = draw(st.sampled_from([3, 4]))
    original = draw(arrays(np.uint8, (h, w, channels)))
    generated = draw(arrays(np.uint8, (h, w, 3)))
    mask = draw(arrays(np.float32, (h, w), elements=st.sampled_from([0.0, 0.0, 0.0, 0.3, 1.0]).map(np.float32)))
    return original, generated, mask, draw(st.integers(0, 5))


@settings(max_examples=80, deadline=None)
@given(case=paste_cases())
def test_paste_back_leaves_pixels_outside_the_paste_mask_identical(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    original, generated, mask, blur = case
    out = paste_back(original, generated, mask, blur)
    assert out.shape == generated.shape and out.dtype == np.uint8
    outside = paste_mask(mask, blur) == 0
    np.testing.assert_array_equal(out[outside], original[..., :3][outside])
    np.testing.assert_array_equal(out[mask == 1], generated[mask == 1])
    if blur == 0:
        np.testing.assert_array_equal(out[mask == 0], original[..., :3][mask == 0])


def test_paste_back_blends_by_hand() -> None:
    original = np.full((1, 2, 3), 100, np.uint8)
    generated = np.full((1, 2, 3), 201, np.uint8)
    mask = np.array([[0.5, 0.0]], np.float32)
    out = paste_back(original, generated, mask, 0)
    assert out[0, 0].tolist() == [round(201 * 0.5 + 100 * 0.5)] * 3  # 150.5 rounds to even: 150
    assert out[0, 1].tolist() == [100] * 3


@pytest.mark.parametrize(
    "original, generated, mask, blur, match",
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), np.zeros((4, 4), np.float32), 0, "sizes differ"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.float32), 0, "sizes differ"),
        (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), 0, "uint8"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), 0, "HxWx3"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), 0, "float32"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 2, np.float32), 0, r"\[0, 1\]"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), -1, "blur"),
    ],
)
def test_paste_back_rejects_bad_input(original, generated, mask, blur, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidImageError, match=match):
        paste_back(original, generated, mask, blur)


# --- resizing -------------------------------------------------------------------------------------


def test_resize_is_a_no_op_at_the_same_size() -> None:
    img = rgba(6, 10, 14)[..., :3].copy()
    mask = np.zeros((6, 10), np.float32)
    assert resize_image(img, (10, 6)) is img
    assert resize_mask(mask, (10, 6)) is mask


@pytest.mark.parametrize("size", [(5, 3), (20, 12), (5, 12)])
def test_resize_gives_the_requested_size(size: tuple[int, int]) -> None:
    img = np.full((6, 10, 3), 77, np.uint8)
    out = resize_image(img, size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    assert (out == 77).all()  # a flat image stays flat, whatever the filter
    mask = np.zeros((6, 10), np.float32)
    mask[:, 5:] = 1
    m = resize_mask(mask, size)
    assert m.shape == (size[1], size[0]) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 and m[:, 0].max() == 0 and m[:, -1].min() == 1


def test_resize_rejects_bad_size() -> None:
    with pytest.raises(InvalidImageError, match="width, height"):
        resize_image(np.zeros((4, 4, 3), np.uint8), (0, 4))
    with pytest.raises(InvalidImageError, match="width, height"):
        resize_mask(np.zeros((4, 4), np.float32), (4,))  # type: ignore[arg-type]
