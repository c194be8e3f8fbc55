"""Pure mask and image maths for the canvas: compositing layers into the bbox, masks, paste-back, resizing.

Conventions (see types.py): images are uint8 (RGBA HxWx4 or RGB HxWx3), masks float32 HxW in [0, 1]
where 1 means "repaint". Sizes given as tuples are (width, height), like PIL and OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import InvalidImageError
from .types import Bounds, Layer, LayerKind

__all__ = [
    "check_image",
    "check_mask",
    "composite_layers",
    "coverage",
    "mask_from_layers",
    "paste_mask",
    "pipeline_mask",
    "paste_back",
    "resize_image",
    "resize_mask",
]


# --- validation -----------------------------------------------------------------------------------


def check_image(image: object, channels: tuple[int, ...], name: str = "image") -> np.ndarray:
    """Return `image` if it is an HxWxC uint8 array with C in `channels`, else raise InvalidImageError."""
    want = " or ".join(f"HxWx{c}" for c in channels)
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"{name} must be a numpy array ({want} uint8), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] not in channels:
        raise InvalidImageError(f"{name} must be {want} uint8, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidImageError(f"{name} must be uint8 ({want}), got dtype {image.dtype}")
    return image


def check_mask(mask: object, name: str = "mask") -> np.ndarray:
    """Return `mask` as float32 HxW in [0, 1]; bool and float arrays are accepted, anything else raises.

    uint8 is refused on purpose: 0..1 and 0..255 would both be plausible and silently differ.
    """
    if not isinstance(mask, np.ndarray):
        raise InvalidImageError(f"{name} must be a numpy array (HxW float32 in [0, 1]), got {type(mask).__name__}")
    if mask.ndim != 2:
        raise InvalidImageError(f"{name} must be HxW (2-D), got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if not np.issubdtype(mask.dtype, np.floating):
        raise InvalidImageError(f"{name} must be float32 in [0, 1] (or bool), got dtype {mask.dtype}")
    mask = mask.astype(np.float32, copy=False)
    if mask.size and not (np.isfinite(mask).all() and mask.min() >= 0.0 and mask.max() <= 1.0):
        raise InvalidImageError(f"{name} values must be finite and in [0, 1]")
    return mask


def _check_same_size(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise InvalidImageError(
            f"{what}: sizes differ, {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]} (width x height)"
        )


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, tuple)
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise InvalidImageError(f"size must be (width, height) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


# --- layers into the bbox -------------------------------------------------------------------------


def _overlap(layer: Layer, bbox: Bounds) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """(bbox-frame slices, layer-frame slices) of the part of `layer` inside `bbox`, or None if disjoint."""
    lb = layer.bounds
    x0, x1 = max(lb.x, bbox.x), min(lb.right, bbox.right)
    y0, y1 = max(lb.y, bbox.y), min(lb.bottom, bbox.bottom)
    if x0 >= x1 or y0 >= y1:
        return None
    dst = (slice(y0 - bbox.y, y1 - bbox.y), slice(x0 - bbox.x, x1 - bbox.x))
    src = (slice(y0 - lb.y, y1 - lb.y), slice(x0 - lb.x, x1 - lb.x))
    return dst, src


def _layer_alpha(layer: Layer, src: tuple[slice, slice]) -> np.ndarray:
    # alpha/255 first: 255/255 is exactly 1.0, so opaque pixels at opacity 1 stay exact through "over".
    alpha = layer.pixels[src][..., 3].astype(np.float32) / np.float32(255)
    if layer.opacity != 1.0:
        alpha *= np.float32(layer.opacity)
    return alpha


def composite_layers(layers: Sequence[Layer], bbox: Bounds) -> np.ndarray:
    """RGBA uint8 (bbox.height, bbox.width, 4): visible raster layers, bottom to top, "over" with opacity.

    Unpainted pixels are (0, 0, 0, 0). The output is straight (not premultiplied) alpha.
    """
    bbox = Bounds(*bbox)
    # Premultiplied accumulation: "over" is then a plain lerp per channel.
    acc = np.zeros((bbox.height, bbox.width, 4), np.float32)
    for layer in layers:
        if not layer.visible or layer.kind is not LayerKind.RASTER or layer.opacity == 0:
            continue
        check_image(layer.pixels, (4,), f"layer {layer.id!r} pixels")
        placed = _overlap(layer, bbox)
        if placed is None:
            continue
        dst, src = placed
        a = _layer_alpha(layer, src)[..., None]
        region = acc[dst]
        region[..., :3] = layer.pixels[src][..., :3] * a + region[..., :3] * (1 - a)
        region[..., 3:] = a + region[..., 3:] * (1 - a)

    alpha = acc[..., 3:]
    out_alpha = np.rint(alpha * 255)
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = np.where(out_alpha > 0, acc[..., :3] / alpha, 0)  # alpha byte 0 => RGB 0, as promised
    out = np.empty((bbox.height, bbox.width, 4), np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3:] = out_alpha
    return out


def coverage(layer: Layer, bbox: Bounds) -> np.ndarray:
    """float32 (bbox.height, bbox.width) in [0, 1]: the layer's alpha/255 * opacity, zero outside the layer."""
    bbox = Bounds(*bbox)
    check_image(layer.pixels, (4,), f"layer {layer.id!r} pixels")
    out = np.zeros((bbox.height, bbox.width), np.float32)
    placed = _overlap(layer, bbox)
    if placed is not None:
        dst, src = placed
        out[dst] = _layer_alpha(layer, src)
    return out


def mask_from_layers(layers: Sequence[Layer], bbox: Bounds) -> np.ndarray:
    """float32 (bbox.height, bbox.width): the union (max) of the visible inpaint-mask layers' coverage."""
    bbox = Bounds(*bbox)
    out = np.zeros((bbox.height, bbox.width), np.float32)
    for layer in layers:
        if layer.visible and layer.kind is LayerKind.INPAINT_MASK:
            np.maximum(out, coverage(layer, bbox), out=out)
    return out


# --- paste-back -----------------------------------------------------------------------------------


def paste_mask(mask: np.ndarray, blur: int) -> np.ndarray:
    """The mask used to paste generated pixels back: the mask with a soft edge `blur` pixels wide.

    The edge only grows outward (the inside of the mask is pasted fully): the mask is dilated by half
    the radius, then blurred over the other half, so the paste weight falls smoothly from ~1 at the
    mask's edge to 0 at `blur` pixels out (a plain blur would jump from 1 to ~0.5 at the edge).
    Pixels farther than `blur` pixels (Euclidean) from every mask pixel are exactly 0.
    """
    mask = check_mask(mask)
    if not isinstance(blur, (int, np.integer)) or isinstance(blur, bool) or blur < 0:
        raise InvalidImageError(f"blur must be an integer >= 0, got {blur!r}")
    blur = int(blur)
    if blur == 0 or mask.size == 0:
        return mask.copy()
    grow = blur // 2
    soften = blur - grow
    grown = mask
    if grow:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        grown = cv2.dilate(mask, disk, borderType=cv2.BORDER_REPLICATE)
    k = 2 * soften + 1
    soft = cv2.GaussianBlur(grown, (k, k), soften / 2.0, borderType=cv2.BORDER_REPLICATE)
    # Square kernels reach farther along diagonals; cut at the Euclidean distance `blur`.
    # (distanceTransform measures, for each non-mask pixel, the distance to the nearest mask pixel.)
    far = cv2.distanceTransform((mask <= 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    soft[far > blur + 1e-3] = 0
    return np.clip(np.maximum(mask, soft), 0.0, 1.0, dtype=np.float32)


def pipeline_mask(mask: np.ndarray, blur: int) -> np.ndarray:
    """float32 0/1 mask for the diffusion pipeline: 1 wherever paste-back will take generated pixels."""
    return (paste_mask(mask, blur) > 0).astype(np.float32)


def paste_back(original: np.ndarray, generated: np.ndarray, mask: np.ndarray, blur: int) -> np.ndarray:
    """RGB uint8: generated pixels blended into the original's RGB through paste_mask(mask, blur).

    Where the paste mask is 0 the result is byte-identical to the original (no float round trip).
    """
    check_image(original, (3, 4), "original")
    check_image(generated, (3,), "generated")
    mask = check_mask(mask)
    _check_same_size(original, generated, "paste_back original and generated")
    _check_same_size(original, mask, "paste_back original and mask")
    orig_rgb = original[..., :3]
    m = paste_mask(mask, blur)[..., None]
    blended = np.rint(generated * m + orig_rgb * (1 - m))
    return np.where(m > 0, np.clip(blended, 0, 255), orig_rgb).astype(np.uint8)


# --- resizing -------------------------------------------------------------------------------------


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 RGB/RGBA image to size=(width, height): area when shrinking, Lanczos when growing.

    Returns `img` itself when it already has that size.
    """
    check_image(img, (3, 4))
    width, height = _check_size(size)
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    shrinking = width <= w and height <= h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(img, (width, height), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float mask to size=(width, height) with linear interpolation; `mask` itself if same size."""
    mask = check_mask(mask)
    width, height = _check_size(size)
    if mask.shape == (height, width):
        return mask
    return np.clip(cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def coverage_from_mask_image(mask: np.ndarray) -> np.ndarray:
    """A mask image as tools draw it (white = covered; RGBA) -> mask-layer pixels: the luminance, times the
    image's own alpha, as the alpha of an otherwise black layer."""
    lum = (mask[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) * (mask[..., 3] / 255.0)
    pixels = np.zeros(mask.shape, np.uint8)
    pixels[..., 3] = np.clip(lum.round(), 0, 255).astype(np.uint8)
    return pixels
