"""ControlNet preprocessors: an RGB image -> the control map a ControlNet expects (pure numpy/OpenCV).

`preprocess(image, name, **options)` takes and returns HxWx3 uint8 RGB at the same size. Maps are
white features on black, as the ControlNet canny, soft-edge, lineart and scribble models were trained.
`PREPROCESSORS` names each one with its default options; an unknown name or option is an
InvalidCanvasError that lists the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import cv2
import numpy as np

from .errors import InvalidCanvasError

__all__ = ["PREPROCESSORS", "Preprocessor", "check_preprocessor", "preprocess"]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _rgb(single: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(single[..., None], 3, axis=2))


def _none(image: np.ndarray) -> np.ndarray:
    """The image already is a map (depth, normals, pose...): used as is."""
    return image.copy()


def _canny(image: np.ndarray, low: int, high: int) -> np.ndarray:
    # OpenCV's Canny takes the strongest gradient over the three channels: colour edges count too.
    return _rgb(cv2.Canny(image, int(low), int(high)))


def _soft_edge(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blurred Scharr gradient magnitude, scaled so the strongest edge is white (a HED-like soft map)."""
    gray = cv2.GaussianBlur(_gray(image).astype(np.float32), (0, 0), float(sigma))
    magnitude = cv2.magnitude(cv2.Scharr(gray, cv2.CV_32F, 1, 0), cv2.Scharr(gray, cv2.CV_32F, 0, 1))
    peak = float(magnitude.max())
    scaled = magnitude * np.float32(255 / peak) if peak > 0 else magnitude
    return _rgb(np.rint(scaled).clip(0, 255).astype(np.uint8))


def _lineart(image: np.ndarray, block_size: int, c: float) -> np.ndarray:
    """Pixels darker than their neighbourhood by more than `c` become white lines on black."""
    return _rgb(
        cv2.adaptiveThreshold(
            _gray(image), 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, int(block_size), float(c)
        )
    )


def _scribble(image: np.ndarray, thickness: int) -> np.ndarray:
    """Otsu-binarised strokes, white on black (dark strokes on a light ground are inverted), thickened."""
    _, binary = cv2.threshold(_gray(image), 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if np.count_nonzero(binary) * 2 > binary.size:  # light strokes on a dark ground: flip back
        binary = 255 - binary
    if thickness > 1:  # grow by a round pen of diameter `thickness`
        r = int(thickness) // 2
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        binary = cv2.dilate(binary, ((yy**2 + xx**2) <= (thickness / 2) ** 2).astype(np.uint8))
    return _rgb(binary)


def _threshold(image: np.ndarray, value: int) -> np.ndarray:
    return _rgb(np.where(_gray(image) > value, 255, 0).astype(np.uint8))


def _tile(image: np.ndarray, factor: float) -> np.ndarray:
    """Down by `factor` (area average) and back up (cubic): the detail a tile ControlNet re-creates."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), float(sigma))


def _color_map(image: np.ndarray, tile: int) -> np.ndarray:
    """Blocks of `tile` pixels, each its mean colour (area down, nearest up)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // int(tile)), max(1, h // int(tile))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class Preprocessor(NamedTuple):
    function: Callable[..., np.ndarray]
    defaults: dict[str, float]
    checks: dict[str, Callable[[Any], bool]]
    label: str = ""  # what the UI shows (published by GET /api/v1/config)


def _positive(v: Any) -> bool:
    return v > 0


def _odd_at_least_3(v: Any) -> bool:
    return int(v) == v and v >= 3 and v % 2 == 1


def _byte(v: Any) -> bool:
    return 0 <= v <= 255


PREPROCESSORS: dict[str, Preprocessor] = {
    "none": Preprocessor(_none, {}, {}, "None (already a map)"),
    "canny": Preprocessor(_canny, {"low": 100, "high": 200}, {"low": _byte, "high": _byte}, "Canny edges"),
    "soft_edge": Preprocessor(_soft_edge, {"sigma": 1.5}, {"sigma": _positive}, "Soft edges"),
    "lineart": Preprocessor(_lineart, {"block_size": 9, "c": 6}, {"block_size": _odd_at_least_3}, "Line art"),
    "scribble": Preprocessor(_scribble, {"thickness": 3}, {"thickness": _positive}, "Scribble"),
    "threshold": Preprocessor(_threshold, {"value": 127}, {"value": _byte}, "Threshold"),
    "tile": Preprocessor(_tile, {"factor": 4}, {"factor": lambda v: v >= 1}, "Tile (blurred detail)"),
    "blur": Preprocessor(_blur, {"sigma": 5}, {"sigma": _positive}, "Blur"),
    "color_map": Preprocessor(_color_map, {"tile": 64}, {"tile": lambda v: int(v) == v and v >= 1}, "Colour map"),
}


def check_preprocessor(name: object) -> Preprocessor:
    """The named preprocessor, or an InvalidCanvasError listing the valid names."""
    found = PREPROCESSORS.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidCanvasError(f"unknown preprocessor {name!r}: choose one of {', '.join(PREPROCESSORS)}")
    return found


def preprocess(image_rgb: np.ndarray, name: str, **options: float) -> np.ndarray:
    """The control map of `image_rgb` (HxWx3 uint8) by the named preprocessor; same size, HxWx3 uint8."""
    found = check_preprocessor(name)
    if (
        not isinstance(image_rgb, np.ndarray)
        or image_rgb.dtype != np.uint8
        or image_rgb.ndim != 3
        or image_rgb.shape[2] != 3
    ):
        got = (
            f"{image_rgb.dtype} array of shape {image_rgb.shape}"
            if isinstance(image_rgb, np.ndarray)
            else type(image_rgb).__name__
        )
        raise InvalidCanvasError(f"preprocessor {name!r}: the image must be an HxWx3 uint8 array (RGB), got {got}")
    unknown = sorted(set(options) - set(found.defaults))
    if unknown:
        valid = ", ".join(found.defaults) or "none"
        raise InvalidCanvasError(f"preprocessor {name!r} has no option {unknown[0]!r}: its options are {valid}")
    values = {**found.defaults, **options}
    for key, value in options.items():
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or not found.checks.get(key, lambda v: True)(value):
            raise InvalidCanvasError(f"preprocessor {name!r}: option {key}={value!r} is out of range")
    return found.function(np.ascontiguousarray(image_rgb), **values)
