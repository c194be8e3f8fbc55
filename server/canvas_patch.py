"""A save's changed tiles applied to the layers they belong to (the I/O around canvas_tiles).

Each patched layer gets a new image asset (its base image with the tiles pasted in, cropped to what is
painted); the document then names that asset, so a saved document always looks like one the browser
uploaded whole. The base image stays: older versions still name it.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np
from PIL import Image

from db import images
from db.errors import InvalidInput

from .canvas_tiles import Placed, Tile, apply_tiles
from .schemas import TileIn
from .services import Services

_CATEGORY = {"inpaint_mask": "mask", "regional_guidance": "mask", "control": "control"}


def patch_layers(s: Services, document: dict[str, Any], tiles: list[TileIn]) -> None:
    """Apply `tiles` to `document`'s layers in place (new `image_id`, `x`, `y`; no `image_id` when empty)."""
    if not tiles:
        return
    layers = {layer["id"]: layer for layer in document.get("layers", [])}
    by_layer: dict[str, list[Tile]] = {}
    for t in tiles:
        if t.layer_id not in layers:
            raise InvalidInput(f"a tile names layer {t.layer_id!r}, which the document does not have")
        by_layer.setdefault(t.layer_id, []).append(_decode(s, t))
    for layer_id, layer_tiles in by_layer.items():
        layer = layers[layer_id]
        base = _load(s, layer["image_id"], layer.get("x", 0), layer.get("y", 0)) if layer.get("image_id") else None
        patched = apply_tiles(base, layer_tiles)
        if patched is None:
            layer.pop("image_id", None)
            continue
        record = images.add_image(
            s.db,
            s.store,
            _png(patched.pixels),
            origin="uploaded",
            category=_CATEGORY.get(layer["kind"], "layer"),
            max_bytes=s.config.max_upload_bytes,
            max_pixels=s.config.max_image_pixels,
        )
        layer.update(image_id=record.id, x=patched.x, y=patched.y)


def _decode(s: Services, t: TileIn) -> Tile:
    if t.png is None:
        return Tile(t.x, t.y, t.width, t.height, None)
    try:
        data = base64.b64decode(t.png, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"a tile of layer {t.layer_id!r} is not base64") from None
    info = s.store.inspect_upload(data, max_bytes=s.config.max_upload_bytes, max_pixels=s.config.max_image_pixels)
    if (info.width, info.height) != (t.width, t.height):
        raise InvalidInput(f"a tile of layer {t.layer_id!r} is {info.width}x{info.height}, not {t.width}x{t.height}")
    with Image.open(io.BytesIO(data)) as img:
        return Tile(t.x, t.y, t.width, t.height, np.asarray(img.convert("RGBA")))


def _load(s: Services, image_id: str, x: int, y: int) -> Placed:
    record = images.get_image(s.db, image_id)
    with s.store.open(record.file_name) as f, Image.open(f) as img:
        return Placed(np.asarray(img.convert("RGBA")), int(x), int(y))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
