"""Tiling maths for upscaling: a grid of overlapping tiles that covers an image, feathered blend weights,
and the blend of processed tiles back into one image. Pure numpy, no I/O.

Every tile of a grid has the same size (a model compiled or tuned for one size sees one size), the first
tile starts at 0 and the last ends at the image's edge, and neighbours overlap by at least the overlap
asked for. A tile's weight is 1 inside and falls smoothly (a raised cosine) to near 0 over its overlap
with each neighbour, and stays 1 up to the image's own edges; the blend is the weighted mean of the
tiles covering each pixel (the weights renormalised there), so no tile boundary is left as a step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from .types import Bounds


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` along a side of `length`, overlapping by at least `overlap`,
    spread evenly (the last one ends at `length`)."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - overlap) / stride)
    if count < 2:
        count = 2
    # evenly from 0 to length - tile: the actual stride is at most `stride`, so the overlap is at least `overlap`
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, tile: int, overlap: int, multiple: int = 1) -> list[Bounds]:
    """Tiles (x, y, width, height) covering a `width` x `height` image, row by row.

    `tile`: the side of a tile (a side shorter than `tile` gets one tile as long as the side);
    `overlap`: the least overlap of neighbouring tiles; `multiple`: tile sides are multiples of it (a
    diffusion model's size rule), rounded down (the image's sides must be multiples of it too).
    """
    for name, value in (("width", width), ("height", height), ("tile", tile), ("multiple", multiple)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if width % multiple or height % multiple:
        raise ValueError(f"image {width}x{height} is not a multiple of {multiple}")
    tile = tile // multiple * multiple
    if tile < multiple:
        raise ValueError(f"tile side below the multiple {multiple}")
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ValueError(f"overlap must be an integer in [0, {tile}), got {overlap!r}")
    tw, th = min(tile, width), min(tile, height)
    xs, ys = _starts(width, tw, overlap), _starts(height, th, overlap)
    return [Bounds(x, y, tw, th) for y in ys for x in xs]


def _ramp(length: int, before: int, after: int) -> np.ndarray:
    """1-D weights of a tile side of `length`: rising over `before` pixels, falling over the last
    `after`, 1 between; a raised cosine sampled at pixel centres (never exactly 0)."""
    w = np.ones(length, np.float32)
    for size, reverse in ((before, False), (after, True)):
        size = min(size, length)
        if size <= 0:
            continue
        t = (np.arange(size, dtype=np.float32) + 0.5) / size
        ramp = 0.5 - 0.5 * np.cos(np.pi * t)
        if reverse:
            w[length - size :] = np.minimum(w[length - size :], ramp[::-1])
        else:
            w[:size] = np.minimum(w[:size], ramp)
    return w


def feather_weights(tile: Bounds, tiles: Sequence[Bounds], width: int, height: int, feather: int | None = None) -> np.ndarray:
    """The blend weights (H x W float32, in (0, 1]) of `tile` among `tiles` covering a `width` x `height`
    image. On each side that overlaps a neighbour the weight falls over that overlap (or over `feather`
    pixels when smaller); at the image's edges it stays 1."""
    x, y, w, h = tile
    before_x = after_x = before_y = after_y = 0
    for other in tiles:
        if other == tile:
            continue
        ox, oy, ow, oh = other
        rows_meet = oy < y + h and y < oy + oh
        cols_meet = ox < x + w and x < ox + ow
        if rows_meet and ox < x < ox + ow:  # a neighbour on the left
            before_x = max(before_x, ox + ow - x)
        if rows_meet and ox < x + w < ox + ow:  # on the right
            after_x = max(after_x, x + w - ox)
        if cols_meet and oy < y < oy + oh:  # above
            before_y = max(before_y, oy + oh - y)
        if cols_meet and oy < y + h < oy + oh:  # below
            after_y = max(after_y, y + h - oy)
    if feather is not None:
        before_x, after_x, before_y, after_y = (min(v, feather) for v in (before_x, after_x, before_y, after_y))
    return np.outer(_ramp(h, before_y, after_y), _ramp(w, before_x, after_x))


class TileBlender:
    """Accumulates processed tiles into one image (float32 weighted sum) in any order; `result()` gives
    the weighted mean (uint8), `partial()` what is blended so far over a background. `feather` 0: no
    blend, each tile pasted over the last (the hard edges a blend avoids)."""

    def __init__(self, width: int, height: int, channels: int, tiles: Sequence[Bounds], scale: int = 1, feather: int | None = None):
        """`tiles`: the grid, in input pixels; the tiles given to `add` are `scale` times their size (an
        upscaler's output), blended at the output's size with weights (and overlaps) scaled alike."""
        self.tiles = list(tiles)
        self.scale = scale
        self.feather = feather
        self.width, self.height = width * scale, height * scale
        self._sum = np.zeros((self.height, self.width, channels), np.float32)
        self._weight = np.zeros((self.height, self.width), np.float32)

    def weights(self, tile: Bounds) -> np.ndarray:
        s = self.scale
        scaled = [Bounds(t.x * s, t.y * s, t.width * s, t.height * s) for t in self.tiles]
        return feather_weights(scaled[self.tiles.index(tile)], scaled, self.width, self.height, None if self.feather is None else self.feather * s)

    def add(self, tile: Bounds, pixels: np.ndarray) -> None:
        s = self.scale
        x, y, w, h = tile.x * s, tile.y * s, tile.width * s, tile.height * s
        if pixels.shape[:2] != (h, w):
            raise ValueError(f"tile {tuple(tile)} gave {pixels.shape[1]}x{pixels.shape[0]} pixels, expected {w}x{h}")
        if self.feather == 0:  # no blend: pasted over what is there (hard edges, to compare against)
            self._sum[y : y + h, x : x + w] = pixels
            self._weight[y : y + h, x : x + w] = 1
            return
        weight = self.weights(tile)
        self._sum[y : y + h, x : x + w] += pixels.astype(np.float32) * weight[..., None]
        self._weight[y : y + h, x : x + w] += weight

    def result(self) -> np.ndarray:
        if not (self._weight > 0).all():
            raise ValueError("the tiles added do not cover the image")
        return np.rint(self._sum / self._weight[..., None]).clip(0, 255).astype(np.uint8)

    def partial(self, background: np.ndarray) -> np.ndarray:
        """The blend so far where a tile was added, `background` (same size) elsewhere."""
        covered = self._weight > 0
        out = background.astype(np.float32).copy()
        out[covered] = self._sum[covered] / self._weight[covered][:, None]
        return np.rint(out).clip(0, 255).astype(np.uint8)


def blend_tiles(tiles: Sequence[Bounds], pixels: Iterable[np.ndarray], width: int, height: int, scale: int = 1, feather: int | None = None) -> np.ndarray:
    """Blend processed tiles (each `scale` times its tile's size, uint8 H x W x C) into one image of
    `width * scale` x `height * scale`."""
    blender = None
    for tile, tile_pixels in zip(tiles, pixels, strict=True):
        if blender is None:
            blender = TileBlender(width, height, tile_pixels.shape[2], tiles, scale, feather)
        blender.add(tile, tile_pixels)
    if blender is None:
        raise ValueError("no tiles")
    return blender.result()


def crop(image: np.ndarray, tile: Bounds) -> np.ndarray:
    """The pixels of `tile` in `image` (a view)."""
    return image[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width]
