"""A layer's pixels patched with the tiles a browser changed since its last save (pure numpy).

A browser closing its page can send only a small body, so it sends the 256x256 tiles a stroke touched
instead of the whole layer; each tile REPLACES the pixels of its rectangle (an erased tile is a clear
one, a removed tile is None). The result is cropped to its painted (alpha > 0) bounds, as the browser
crops its own uploads, or None when nothing is painted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE_SIDE = 256  # web/canvas/tiles.js TILE: the browser never sends a larger tile


@dataclass(frozen=True)
class Tile:
    x: int  # canvas coordinates of the tile's top-left pixel
    y: int
    width: int
    height: int
    pixels: np.ndarray | None  # (height, width, 4) uint8 RGBA; None: the tile was removed (all clear)


@dataclass(frozen=True)
class Placed:
    """RGBA pixels at a canvas position."""

    pixels: np.ndarray
    x: int
    y: int


def apply_tiles(base: Placed | None, tiles: list[Tile]) -> Placed | None:
    """`base` with every tile's rectangle replaced by the tile (later tiles win), cropped to alpha > 0."""
    rects = [(t.x, t.y, t.width, t.height) for t in tiles]
    if base is not None:
        h, w = base.pixels.shape[:2]
        rects.append((base.x, base.y, w, h))
    if not rects:
        return None
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    out = np.zeros((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    if base is not None:
        h, w = base.pixels.shape[:2]
        out[base.y - y0 : base.y - y0 + h, base.x - x0 : base.x - x0 + w] = base.pixels
    for t in tiles:
        region = out[t.y - y0 : t.y - y0 + t.height, t.x - x0 : t.x - x0 + t.width]
        region[...] = 0 if t.pixels is None else t.pixels
    return crop_to_alpha(Placed(out, x0, y0))


def crop_to_alpha(placed: Placed) -> Placed | None:
    alpha = placed.pixels[..., 3] > 0
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Placed(np.ascontiguousarray(placed.pixels[r0:r1, c0:c1]), placed.x + c0, placed.y + r0)
