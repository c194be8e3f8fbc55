"""Canvas document -> GenerationRequest: validate, pick the mode, build init image, mask, regions, controls.

A malformed canvas raises InvalidCanvasError with a one-line message; nothing is silently "fixed".
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import limits
from .errors import InvalidCanvasError
from .infill import infill
from .lora import validate_loras
from .masks import composite_layers, coverage, mask_from_layers
from .preprocess import check_preprocessor
from .schedulers import check_scheduler_name
from .types import (
    Bounds,
    CanvasDocument,
    ControlInput,
    ControlSettings,
    GenerationParams,
    GenerationRequest,
    Layer,
    LayerKind,
    Mode,
    ReferenceInput,
    ReferenceSettings,
    RegionInput,
)

__all__ = [
    "MAX_GENERATION_SIDE",
    "compile_canvas",
    "generation_size",
    "validate_bbox_size",
    "validate_control_settings",
    "validate_document",
    "validate_reference_settings",
]

MAX_GENERATION_SIDE = limits.MAX_GENERATION_SIDE


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def validate_bbox_size(width: int, height: int) -> None:
    """Raise InvalidCanvasError unless width and height are positive multiples of 8, naming the nearest."""
    m = limits.BBOX_MULTIPLE
    for name, value in (("width", width), ("height", height)):
        if not _is_int(value):
            raise InvalidCanvasError(f"bbox {name} must be an integer multiple of 8, got {value!r}")
        if value > 0 and value % m == 0:
            continue
        below, above = value // m * m, value // m * m + m
        if value <= 0:
            raise InvalidCanvasError(f"bbox {name} {value} must be positive: use a multiple of 8 such as 8")
        suggestion = f"{below} or {above}" if below > 0 else f"{above}"
        raise InvalidCanvasError(f"bbox {name} {value} is not a multiple of 8: use {suggestion}")


def generation_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) * scale, each rounded half-up to the nearest multiple of 8, at least 8."""
    return (max(8, math.floor(width * scale / 8 + 0.5) * 8), max(8, math.floor(height * scale / 8 + 0.5) * 8))


def _check_range(name: str, value: object, low: float, high: float, *, integer: bool, low_open: bool = False) -> None:
    ok = _is_int(value) if integer else _is_real(value)
    if ok:
        ok = (low < value if low_open else low <= value) and value <= high  # type: ignore[operator]
    if not ok:
        kind = "an integer" if integer else "a number"
        interval = f"{'(' if low_open else '['}{low}, {high}]" if not integer else f"{low}..{high}"
        raise InvalidCanvasError(f"{name} must be {kind} in {interval}, got {value!r}")


def _validate_params(params: GenerationParams) -> None:
    if not isinstance(params.prompt, str) or not isinstance(params.negative_prompt, str):
        raise InvalidCanvasError("prompt and negative prompt must be text")
    check_scheduler_name(params.scheduler)
    for name, allowed, integer in (
        ("steps", limits.STEPS, True),
        ("cfg_scale", limits.CFG_SCALE, False),
        ("true_cfg_scale", limits.TRUE_CFG_SCALE, False),
        ("batch_size", limits.BATCH_SIZE, True),
        ("strength", limits.STRENGTH, False),
        ("mask_blur", limits.MASK_BLUR, True),
        ("scale", limits.SCALE, False),
        ("seed", limits.SEED, True),
    ):
        value = getattr(params, name)
        _check_range(name, value, allowed.low, allowed.high, integer=integer, low_open=allowed.low_open)
    color = params.infill_color
    if not (isinstance(color, (tuple, list)) and len(color) == 3 and all(_is_int(c) and 0 <= c <= 255 for c in color)):
        raise InvalidCanvasError(f"infill_color must be three integers 0..255 (R, G, B), got {color!r}")
    validate_loras(params.loras)


def validate_control_settings(settings: ControlSettings, where: str) -> None:
    """Weight in [0, 2], 0 <= begin < end <= 1, a known preprocessor; `where` names the layer in errors."""
    if not isinstance(settings.model, str) or not settings.model:
        raise InvalidCanvasError(f"{where}: choose a ControlNet model")
    try:
        check_preprocessor(settings.preprocessor)
    except InvalidCanvasError as exc:
        raise InvalidCanvasError(f"{where}: {exc}") from None
    _check_weight_and_steps(settings, (limits.CONTROL_WEIGHT, limits.CONTROL_BEGIN, limits.CONTROL_END), where)


def validate_reference_settings(settings: ReferenceSettings, where: str) -> None:
    """Weight in [0, 2], 0 <= begin < end <= 1, a model id or none; `where` names the layer in errors."""
    if not isinstance(settings, ReferenceSettings):
        raise InvalidCanvasError(f"{where}: reference settings must be ReferenceSettings, got {type(settings).__name__}")
    if settings.model is not None and (not isinstance(settings.model, str) or not settings.model):
        raise InvalidCanvasError(f"{where}: the reference model must be an installed model's id, or none for the default")
    _check_weight_and_steps(settings, (limits.REFERENCE_WEIGHT, limits.REFERENCE_BEGIN, limits.REFERENCE_END), where)


def _check_weight_and_steps(settings: Any, ranges: tuple[Any, Any, Any], where: str) -> None:
    """A layer's weight, begin and end within their `ranges` (limits), begin below end."""
    try:
        for name, allowed in zip(("weight", "begin", "end"), ranges):
            _check_range(name, getattr(settings, name), allowed.low, allowed.high, integer=False)
    except InvalidCanvasError as exc:
        raise InvalidCanvasError(f"{where}: {exc}") from None
    if settings.begin >= settings.end:
        raise InvalidCanvasError(f"{where}: begin {settings.begin:g} must be below end {settings.end:g}")


def _validate_layer(layer: Layer) -> None:
    pixels = layer.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        got = type(pixels).__name__
        if isinstance(pixels, np.ndarray):
            got = f"{pixels.dtype} array of shape {pixels.shape}"
        raise InvalidCanvasError(f"layer {layer.id!r}: pixels must be an HxWx4 uint8 array (RGBA), got {got}")
    if not (_is_int(layer.x) and _is_int(layer.y)):
        raise InvalidCanvasError(f"layer {layer.id!r}: position must be integers, got ({layer.x!r}, {layer.y!r})")
    if not (_is_real(layer.opacity) and limits.OPACITY.holds(layer.opacity)):
        raise InvalidCanvasError(f"layer {layer.id!r}: opacity must be in [0, 1], got {layer.opacity!r}")
    if not layer.visible:
        return  # hidden layers are ignored, so an unfinished region or control layer may stay hidden
    if layer.kind is LayerKind.REGIONAL_GUIDANCE and (layer.region is None or not layer.region.prompt.strip()):
        raise InvalidCanvasError(f"regional guidance layer {layer.id!r} needs a prompt: add one or hide the layer")
    if layer.kind is LayerKind.REGIONAL_GUIDANCE:
        try:
            allowed = limits.REGION_STRENGTH
            _check_range("strength", layer.region.strength, allowed.low, allowed.high, integer=False)
        except InvalidCanvasError as exc:
            raise InvalidCanvasError(f"regional guidance layer {layer.id!r}: region {exc}") from None
    if layer.kind is LayerKind.CONTROL and layer.control is None:
        raise InvalidCanvasError(f"control layer {layer.id!r} has no control settings: choose a model or hide it")
    if layer.kind is LayerKind.CONTROL:
        validate_control_settings(layer.control, f"control layer {layer.id!r}")
    if layer.kind is LayerKind.REFERENCE and layer.reference is not None:
        validate_reference_settings(layer.reference, f"reference layer {layer.id!r}")


def validate_document(document: CanvasDocument) -> tuple[int, int]:
    """Check the whole document (sizes, parameters, layers); return the generation size."""
    bbox = document.bbox
    if not (_is_int(bbox.x) and _is_int(bbox.y)):
        raise InvalidCanvasError(f"bbox position must be integers, got ({bbox.x!r}, {bbox.y!r})")
    validate_bbox_size(bbox.width, bbox.height)
    params = document.params
    _validate_params(params)
    from .upscale import validate_params as validate_upscale

    validate_upscale(params, bbox)  # an upscale job's or a hires fix's settings
    size = generation_size(bbox.width, bbox.height, params.scale)
    if max(size) > MAX_GENERATION_SIDE:
        raise InvalidCanvasError(
            f"generation size {size[0]}x{size[1]} (bbox x scale {params.scale:g}) exceeds {MAX_GENERATION_SIDE}"
            f" per side: lower the scale or shrink the bbox"
        )
    references = sum(1 for layer in document.layers if layer.visible and layer.kind is LayerKind.REFERENCE)
    if references > limits.MAX_REFERENCES:
        raise InvalidCanvasError(
            f"{references} reference layers: a job takes at most {limits.MAX_REFERENCES}, hide the others"
        )
    seen: set[str] = set()
    for layer in document.layers:
        if layer.id in seen:
            raise InvalidCanvasError(f"duplicate layer id {layer.id!r}: layer ids must be unique")
        seen.add(layer.id)
        _validate_layer(layer)
    return size


def _control_image(layer: Layer, bbox: Bounds) -> np.ndarray:
    """The layer's RGB over black (alpha and opacity as shown on the canvas), cropped to the bbox."""
    alone = composite_layers([Layer(layer.id, LayerKind.RASTER, layer.x, layer.y, layer.pixels, layer.opacity)], bbox)
    a = alone[..., 3:].astype(np.float32) / np.float32(255)
    return np.rint(alone[..., :3] * a).astype(np.uint8)


def reference_image(layer: Layer) -> np.ndarray:
    """A reference layer's painted part (cropped to where its alpha is) as RGB over white, at its own
    size: the picture, not its place on the canvas, is the reference (the opacity is only how it shows)."""
    alpha = layer.pixels[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows.size:
        raise InvalidCanvasError(f"reference layer {layer.id!r} is empty: load a picture into it or hide it")
    crop = layer.pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    a = crop[..., 3:].astype(np.float32) / np.float32(255)
    return np.rint(crop[..., :3] * a + np.float32(255) * (1 - a)).astype(np.uint8)


def _overlaps(a: Layer, b: Layer) -> bool:
    """Whether two layers have painted pixels (alpha > 0) at the same canvas pixel."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.pixels.shape[1], b.x + b.pixels.shape[1]), min(a.y + a.pixels.shape[0], b.y + b.pixels.shape[0])
    if x0 >= x1 or y0 >= y1:
        return False
    pa = a.pixels[y0 - a.y : y1 - a.y, x0 - a.x : x1 - a.x, 3]
    pb = b.pixels[y0 - b.y : y1 - b.y, x0 - b.x : x1 - b.x, 3]
    return bool(((pa > 0) & (pb > 0)).any())


def _reference(layer: Layer, region_layers: list[Layer], bbox: Bounds) -> ReferenceInput:
    """A reference layer's input: its picture, its settings, and where it applies: inside the masks of the
    regional-guidance layers it lies over (their union, clipped to the bbox), else the whole box."""
    over = [r for r in region_layers if _overlaps(layer, r)]
    mask = np.maximum.reduce([coverage(r, bbox) for r in over]) if over else None
    return ReferenceInput(reference_image(layer), layer.id, layer.reference or ReferenceSettings(), mask, tuple(r.id for r in over))


def compile_canvas(document: CanvasDocument) -> GenerationRequest:
    """Turn what is on the canvas into one GenerationRequest (see types.GenerationRequest)."""
    size = validate_document(document)
    bbox, params, layers = document.bbox, document.params, document.layers

    composite = composite_layers(layers, bbox)
    alpha = composite[..., 3]
    inpaint_mask = mask_from_layers(layers, bbox)
    if not alpha.any():
        mode = Mode.TXT2IMG  # nothing painted: masks are meaningless
    elif (alpha < 255).any():
        mode = Mode.OUTPAINT
    elif inpaint_mask.any():
        mode = Mode.INPAINT
    else:
        mode = Mode.IMG2IMG

    init_image: np.ndarray | None = None
    original: np.ndarray | None = None
    mask: np.ndarray | None = None
    if mode is Mode.TXT2IMG and params.upscale is not None:
        raise InvalidCanvasError("the box is empty: there is nothing to upscale (paint or place a picture under it)")
    if mode is Mode.TXT2IMG:
        if not params.prompt.strip():
            raise InvalidCanvasError("a prompt is required for text-to-image")
    else:
        # Checked before infill, which can be the slow part.
        if int(params.steps * params.strength) < 1:
            raise InvalidCanvasError(
                f"steps x strength = {params.steps} x {params.strength:g} gives no denoising step:"
                f" raise steps or strength so that int(steps x strength) >= 1"
            )
        original = composite
        if mode is Mode.OUTPAINT:
            mask = np.maximum(inpaint_mask, 1 - alpha.astype(np.float32) / np.float32(255))
            init_image = infill(composite, params.infill, params.infill_color, params.seed)
        else:
            mask = inpaint_mask if mode is Mode.INPAINT else None
            init_image = np.ascontiguousarray(composite[..., :3])

    region_layers = [
        layer
        for layer in layers
        if layer.visible and layer.kind is LayerKind.REGIONAL_GUIDANCE and layer.region is not None
    ]
    for layer in region_layers:
        # Nothing painted anywhere is a mistake (checked here, with the pixels: validate_document runs on
        # placeholders). A region painted only outside the bbox is fine: the engine drops regions that
        # cover too little of the bbox (see invoke_core.regions), so moving the bbox never breaks a job.
        if layer.opacity == 0 or not layer.pixels[..., 3].any():
            raise InvalidCanvasError(
                f"regional guidance layer {layer.id!r} has an empty mask: paint the region or hide the layer"
            )
    regions = tuple(
        RegionInput(
            coverage(layer, bbox), layer.region.prompt, layer.region.negative_prompt, layer.id, layer.region.strength
        )
        for layer in region_layers
    )
    controls = tuple(
        ControlInput(_control_image(layer, bbox), layer.control, layer.id)
        for layer in layers
        if layer.visible and layer.kind is LayerKind.CONTROL and layer.control is not None
    )
    references = tuple(
        _reference(layer, region_layers, bbox)
        for layer in layers
        if layer.visible and layer.kind is LayerKind.REFERENCE
    )
    return GenerationRequest(
        mode=mode,
        params=params,
        bbox=bbox,
        size=size,
        init_image=init_image,
        original=original,
        mask=mask,
        regions=regions,
        controls=controls,
        references=references,
    )
