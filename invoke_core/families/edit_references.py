"""Reference layers of edit models (FLUX.1 Kontext, Qwen-Image-Edit): the pictures they edit from.

The picture under the box comes first (when the box holds one), then each reference layer's, in layer
order. A pipeline that reads one picture gets them side by side in one, at the height of the first (the
way Kontext users stitch several); Qwen-Image-Edit Plus reads the list ("Picture 1", "Picture 2", ... in
its prompt template). A reference alone is scaled to about the generation's area, its aspect kept. Pure:
pictures in, pictures out.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image

# Side by side, a picture's width may not exceed this many times the height: a strip of thin slivers
# tells the model nothing and costs tokens
_MAX_RATIO = 4


def _fit(width: int, height: int, area: int, multiple: int) -> tuple[int, int]:
    """(width, height) scaled to about `area` pixels, sides whole multiples of `multiple` (at least one)."""
    scale = (area / (width * height)) ** 0.5
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (width, height))


def _check_ratio(width: int, height: int, where: str) -> None:
    if max(width, height) > _MAX_RATIO * min(width, height):
        from ..errors import UnsupportedError

        raise UnsupportedError(f"{where}: a {width}x{height} reference picture is narrower than edit models take (at most {_MAX_RATIO}:1): crop it")


def pictures(box: Image.Image | None, references: Sequence[Any], size: tuple[int, int], multiple: int) -> list[Image.Image]:
    """The picture under the box (None: the box is empty) and each reference layer's (`references`: the job's
    ReferenceInputs), each at about the generation area `size` (width, height) in multiples of `multiple`."""
    from .. import masks

    area = size[0] * size[1]
    out = [box.convert("RGB")] if box is not None else []
    for n, reference in enumerate(references, 1):
        height, width = reference.image.shape[:2]
        _check_ratio(width, height, f"reference layer {reference.layer_id!r}" if reference.layer_id else f"reference {n}")
        out.append(Image.fromarray(masks.resize_image(np.asarray(reference.image)[..., :3], _fit(width, height, area, multiple))))
    return out


def side_by_side(images: Sequence[Image.Image], multiple: int) -> Image.Image:
    """The pictures left to right in one, each scaled to the first one's height (widths in multiples of
    `multiple`); a single picture as it is."""
    if len(images) == 1:
        return images[0]
    height = images[0].height
    scaled = [im.resize((max(multiple, round(im.width * height / im.height / multiple) * multiple), height), Image.LANCZOS) for im in images]
    out = Image.new("RGB", (sum(im.width for im in scaled), height), (255, 255, 255))
    x = 0
    for im in scaled:
        out.paste(im, (x, 0))
        x += im.width
    return out
