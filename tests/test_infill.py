"""invoke_core.infill: every method fills the holes, keeps opaque pixels exact and is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from invoke_core.errors import InvalidImageError
from invoke_core.infill import infill
from invoke_core.types import InfillMethod

METHODS = list(InfillMethod)


def structured(h: int, w: int) -> np.ndarray:
    """An RGB image with gradients and a checkerboard, so fills have something to copy."""
    yy, xx = np.mgrid[0:h, 0:w]
    checker = ((xx // 4 + yy // 4) % 2) * 200 + 20
    return np.dstack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), checker]).astype(np.uint8)


def with_hole(rgb: np.ndarray, hole: tuple[slice, slice], alpha: int = 0) -> np.ndarray:
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[hole] = alpha
    return np.dstack([rgb, a])


@pytest.mark.parametrize("method", METHODS)
def test_holes_filled_opaque_exact_and_deterministic(method: InfillMethod) -> None:
    rgb = structured(40, 48)
    image = with_hole(rgb, (slice(10, 30), slice(12, 36)))
    # Scribble garbage into the hole's RGB: it must not leak into the result.
    image[10:30, 12:36, :3] = 255
    out = infill(image, method, seed=3)
    assert out.shape == (40, 48, 3) and out.dtype == np.uint8
    opaque = image[..., 3] == 255
    np.testing.assert_array_equal(out[opaque], rgb[opaque])
    np.testing.assert_array_equal(out, infill(image, method, seed=3))
    hole = out[10:30, 12:36].reshape(-1, 3)
    if method is InfillMethod.COLOR:
        assert (hole == (127, 127, 127)).all()
    else:
        assert not (hole == 255).all(axis=1).any(), "hole colour leaked into the fill"
    if method in (InfillMethod.TELEA, InfillMethod.NAVIER_STOKES, InfillMethod.TILE):
        # Diffusion and copying stay within the known colours; patchmatch's pyramid may overshoot a bit.
        lo, hi = rgb[opaque].min(axis=0), rgb[opaque].max(axis=0)
        assert ((hole >= lo) & (hole <= hi)).all()


@pytest.mark.parametrize("method", [m for m in METHODS if m is not InfillMethod.COLOR])
@pytest.mark.parametrize("shape", [(24, 32), (640, 520)])  # the larger one takes the downscaled path
def test_flat_surroundings_fill_with_their_colour(method: InfillMethod, shape: tuple[int, int]) -> None:
    h, w = shape
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (30, 140, 220)
    image = with_hole(rgb, (slice(h // 4, 3 * h // 4), slice(w // 3, w - 2)))
    image[h // 4 : 3 * h // 4, w // 3 : w - 2, :3] = 0
    out = infill(image, method)
    assert np.abs(out.astype(int) - (30, 140, 220)).max() <= 1


def test_tile_copies_known_pixels_and_depends_on_the_seed() -> None:
    h, w = 64, 64
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = with_hole(rgb, (slice(20, 50), slice(0, 40)))
    known = {tuple(p) for p in rgb[image[..., 3] == 255]}
    out = infill(image, InfillMethod.TILE, seed=1)
    assert all(tuple(p) in known for p in out[20:50, 0:40].reshape(-1, 3))
    assert not np.array_equal(out, infill(image, InfillMethod.TILE, seed=2))


def test_tile_works_with_a_thin_strip_of_content() -> None:
    rgb = structured(16, 16)
    a = np.zeros((16, 16), np.uint8)
    a[:, 7] = 255  # one column known: only 1x1 tiles fit
    out = infill(np.dstack([rgb, a]), InfillMethod.TILE)
    column = {tuple(p) for p in rgb[:, 7]}
    assert all(tuple(p) in column for p in out.reshape(-1, 3))


@pytest.mark.parametrize("method", [InfillMethod.TELEA, InfillMethod.PATCHMATCH])
def test_thin_content_on_a_big_image(method: InfillMethod) -> None:
    # Known content thinner than one downscaled pixel (the long side takes the downscaled path).
    rgb = np.zeros((600, 64, 3), np.uint8)
    rgb[:, 30] = (10, 200, 90)
    a = np.zeros((600, 64), np.uint8)
    a[:, 30] = 255
    out = infill(np.dstack([rgb, a]), method)
    assert np.abs(out.astype(int) - (10, 200, 90)).max() <= 1


def test_partly_transparent_pixels_are_blended_over_the_fill() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:] = (200, 0, 50)
    image = with_hole(rgb, (slice(0, 4), slice(0, 8)), alpha=100)
    image[0, 0, 3] = 0
    out = infill(image, InfillMethod.COLOR, color=(10, 20, 30))
    expected = [round(c * 100 / 255 + f * 155 / 255) for c, f in zip((200, 0, 50), (10, 20, 30))]
    assert out[1, 1].tolist() == expected
    assert out[0, 0].tolist() == [10, 20, 30]
    np.testing.assert_array_equal(out[4:], rgb[4:])


@pytest.mark.parametrize("method", METHODS)
def test_no_opaque_pixel_fills_from_the_painted_ones(method: InfillMethod) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:] = (90, 90, 90)
    image = with_hole(rgb, (slice(0, 16), slice(0, 16)), alpha=128)  # one layer at half opacity, say
    image[4:12, 4:12, 3] = 0
    out = infill(image, method, color=(90, 90, 90))
    assert np.abs(out.astype(int) - 90).max() <= 1


def test_nothing_to_fill_returns_the_rgb() -> None:
    image = with_hole(structured(8, 8), (slice(0, 0), slice(0, 0)))
    for method in METHODS:
        np.testing.assert_array_equal(infill(image, method), image[..., :3])


@pytest.mark.parametrize("method", [m for m in METHODS if m is not InfillMethod.COLOR])
def test_fully_transparent_input_is_an_error(method: InfillMethod) -> None:
    with pytest.raises(InvalidImageError, match="nothing to infill from"):
        infill(np.zeros((8, 8, 4), np.uint8), method)


def test_fully_transparent_input_with_color_fills() -> None:
    out = infill(np.zeros((8, 8, 4), np.uint8), InfillMethod.COLOR, color=(1, 2, 3))
    assert (out == (1, 2, 3)).all()


def test_method_given_as_its_string_value() -> None:
    image = with_hole(structured(8, 8), (slice(2, 4), slice(2, 4)))
    np.testing.assert_array_equal(infill(image, "telea"), infill(image, InfillMethod.TELEA))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "image, method, color, match",
    [
        (np.zeros((8, 8, 3), np.uint8), InfillMethod.TELEA, (0, 0, 0), "HxWx4"),
        (np.zeros((8, 8, 4), np.float32), InfillMethod.TELEA, (0, 0, 0), "uint8"),
        (np.zeros((8, 8, 4), np.uint8), "smudge", (0, 0, 0), "unknown infill method"),
        (np.zeros((8, 8, 4), np.uint8), InfillMethod.COLOR, (0, 0, 300), "0..255"),
    ],
)
def test_bad_input(image: np.ndarray, method: InfillMethod, color: tuple[int, int, int], match: str) -> None:
    with pytest.raises(InvalidImageError, match=match):
        infill(image, method, color=color)
