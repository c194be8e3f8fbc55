"""Infill: pre-fill the transparent part of an RGBA composite so img2img has something to start from.

Holes are the pixels with alpha < 255. The fill comes from the fully opaque pixels (or, when there are
none, from every painted pixel); partly transparent pixels are then the original composited over the
fill, and fully opaque pixels are returned unchanged, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .errors import InvalidImageError
from .masks import check_image
from .types import InfillMethod

__all__ = ["infill"]

# Slow fills run on a copy whose longer side is at most this, then are upscaled; only hole pixels
# ever take the fill, and a full-resolution band along the hole edge keeps the seam clean.
_OPENCV_WORK_SIDE = 256
_PATCHMATCH_WORK_SIDE = 384
_PATCHMATCH_PATCH = 3  # radius: 7x7 patches, what the pypatchmatch examples use
_INPAINT_RADIUS = 3
_EDGE_BAND = 6  # pixels of hole next to known content refilled at full resolution
_TILE_SIZES = (32, 16, 8, 4, 2, 1)


def infill(
    image_rgba: np.ndarray,
    method: InfillMethod,
    color: tuple[int, int, int] = (127, 127, 127),
    seed: int = 0,
) -> np.ndarray:
    """RGB uint8 of the same HxW: `image_rgba` with its transparent part filled by `method`."""
    check_image(image_rgba, (4,), "infill image")
    try:
        method = InfillMethod(method)
    except ValueError:
        valid = ", ".join(m.value for m in InfillMethod)
        raise InvalidImageError(f"unknown infill method {method!r}: use one of {valid}") from None
    rgb = np.ascontiguousarray(image_rgba[..., :3])
    alpha = image_rgba[..., 3]
    opaque = alpha == 255
    if opaque.all():
        return rgb.copy()

    if method is InfillMethod.COLOR:
        fill = np.empty_like(rgb)
        fill[:] = _check_color(color)
    else:
        # Sources: opaque pixels; a canvas with none (say one layer at 90% opacity) uses every painted one.
        known = opaque if opaque.any() else alpha > 0
        if not known.any():
            raise InvalidImageError(f"nothing to infill from: the image is fully transparent ({method.value} infill)")
        # Source pixels keep their own colour (tile covers everything; the others leave them alone).
        fill = np.where(known[..., None], rgb, _FILLS[method](rgb, ~known, seed))

    # Straight-alpha "over": partly transparent pixels keep their share of the original colour.
    a = alpha[..., None].astype(np.float32) / np.float32(255)
    blended = np.clip(np.rint(rgb * a + fill * (1 - a)), 0, 255).astype(np.uint8)
    return np.where(opaque[..., None], rgb, blended)


def _check_color(color: object) -> tuple[int, int, int]:
    ok = (
        isinstance(color, (tuple, list))
        and len(color) == 3
        and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    )
    if not ok:
        raise InvalidImageError(f"infill color must be three integers 0..255 (R, G, B), got {color!r}")
    return int(color[0]), int(color[1]), int(color[2])


# --- fills: (rgb, hole bool HxW, seed) -> RGB HxW whose hole pixels are the fill ------------------


def _downscaled(
    rgb: np.ndarray, hole: np.ndarray, work_side: int, fill: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """Run `fill` on a copy shrunk to `work_side`, upscaled back; None when shrinking is not worth it.

    Each small pixel averages only the known pixels under it (hole colours never leak in), and is a
    hole only when none is known, so thin content survives the shrink.
    """
    h, w = hole.shape
    factor = max(h, w) / work_side
    if factor <= 1.5:
        return None
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    known = (~hole).astype(np.float32)
    weight = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    total = cv2.resize(rgb * known[..., None], size, interpolation=cv2.INTER_AREA)
    small_known = weight > 1e-4
    small = np.where(small_known[..., None], total / np.maximum(weight, 1e-4)[..., None], 0)
    filled = fill(np.clip(np.rint(small), 0, 255).astype(np.uint8), ~small_known)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)


def _opencv(flags: int) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    def run(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        # Per channel at 16 bits: on 8-bit input Telea's gradient term amplifies rounding errors and
        # drifts (by 10+ levels across a flat 100-pixel hole); 16-bit keeps it within a level.
        mask = hole.astype(np.uint8)
        channels = [cv2.inpaint(image[..., c].astype(np.uint16) * 257, mask, _INPAINT_RADIUS, flags) for c in range(3)]
        return np.clip(np.rint(np.dstack(channels) / 257), 0, 255).astype(np.uint8)

    def fill(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
        coarse = _downscaled(rgb, hole, _OPENCV_WORK_SIDE, run)
        if coarse is None:
            return run(rgb, hole)
        # Refill the hole's outer band at full size, from the true edge and the coarse interior.
        prefilled = np.where(hole[..., None], coarse, rgb)
        depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
        band = hole & (depth <= _EDGE_BAND)
        return run(prefilled, band)

    return fill


def _patchmatch(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    from patchmatch import patch_match  # deferred: loads a native library

    def run(small: np.ndarray, small_hole: np.ndarray) -> np.ndarray:
        return patch_match.inpaint(small, small_hole.astype(np.uint8), patch_size=_PATCHMATCH_PATCH)

    coarse = _downscaled(rgb, hole, _PATCHMATCH_WORK_SIDE, run)
    return run(rgb, hole) if coarse is None else coarse


def _tile(rgb: np.ndarray, hole: np.ndarray, seed: int) -> np.ndarray:
    """Cover the image with square tiles copied from random fully known spots (seeded, so repeatable)."""
    h, w = hole.shape
    # integral[y, x] = number of hole pixels above-left of (y, x): a tile is clean when its sum is 0.
    integral = cv2.integral(hole.astype(np.uint8))
    for t in _TILE_SIZES:
        if t > h or t > w:
            continue
        holes_in = integral[t:, t:] - integral[:-t, t:] - integral[t:, :-t] + integral[:-t, :-t]
        ys, xs = np.nonzero(holes_in == 0)
        if ys.size:
            break
    rows, cols = -(-h // t), -(-w // t)
    pick = np.random.default_rng(seed).integers(0, ys.size, size=rows * cols)
    windows = np.lib.stride_tricks.sliding_window_view(rgb, (t, t), axis=(0, 1))  # (H-t+1, W-t+1, 3, t, t)
    tiles = windows[ys[pick], xs[pick]].reshape(rows, cols, 3, t, t)
    mosaic = tiles.transpose(0, 3, 1, 4, 2).reshape(rows * t, cols * t, 3)
    return np.ascontiguousarray(mosaic[:h, :w])


# COLOR needs no source pixels, so infill() handles it directly.
_FILLS: dict[InfillMethod, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    InfillMethod.TELEA: _opencv(cv2.INPAINT_TELEA),
    InfillMethod.NAVIER_STOKES: _opencv(cv2.INPAINT_NS),
    InfillMethod.TILE: _tile,
    InfillMethod.PATCHMATCH: _patchmatch,
}
