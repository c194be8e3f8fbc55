"""Upscale jobs and hires fix, on the engine's pipeline machinery (invoke_core/engine.py).

An upscale job (`GenerationParams.upscale`) takes the box's pixels (the composite of its raster layers, as
any job's init image) through an upscaler model (invoke_core/upscalers.py) to 2x or 4x the box, then, with
a refine strength above 0, runs an img2img pass of the job's model and prompt over overlapping tiles of
the upscaled image, each tile one ordinary engine job (`Engine._run`: the family's pipeline, scheduler,
progress and cancel), blended back with feathered weights (invoke_core/tiles.py) so no tile edge shows.
The result is the box's size times the scale, placed at the box's top-left corner (`output_bounds`); a box
with transparent parts keeps them (its alpha resized along).

Hires fix (`GenerationParams.hires_fix`, text-to-image jobs only) generates at the generation size / its
scale, upscales the picture to the generation size (an upscaler model, or a plain Lanczos resize), and
refines it by img2img at its strength with the same prompt, seed, regions and control layers.

The checks (`validate_params`, `check_models`) import no torch: the server runs them when a job is queued.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import limits
from .errors import InvalidCanvasError, UnsupportedError
from .types import Bounds, GenerationRequest, GenerationResult, Mode, Progress

UPSCALER_KIND = "upscaler"


# ----------------------------------------------------------------------------------------------- checks


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_params(params: Any, bbox: Bounds) -> None:
    """Refuse malformed upscale or hires-fix settings (InvalidCanvasError, one line)."""
    up, hires = params.upscale, params.hires_fix
    if up is not None and hires is not None:
        raise InvalidCanvasError("an upscale job takes no hires fix: turn one of them off")
    if up is not None:
        if up.scale not in limits.UPSCALE_SCALES or isinstance(up.scale, bool):
            raise InvalidCanvasError(f"upscale scale must be 2 or 4, got {up.scale!r}")
        if up.model is not None and (not isinstance(up.model, str) or not up.model):
            raise InvalidCanvasError("upscale model must be an installed upscaler's id, or none for the default")
        r = limits.REFINE_STRENGTH
        if not (_number(up.refine_strength) and r.holds(up.refine_strength)):
            raise InvalidCanvasError(f"upscale refine strength must be a number in [{r.low:g}, {r.high:g}], got {up.refine_strength!r}")
        if up.refine_strength > 0 and int(params.steps * up.refine_strength) < 1:
            raise InvalidCanvasError(
                f"steps x refine strength = {params.steps} x {up.refine_strength:g} gives no denoising step: raise either,"
                " or set the refine strength to 0"
            )
        t, o = limits.UPSCALE_TILE, limits.UPSCALE_OVERLAP
        if up.tile_size is not None and not (isinstance(up.tile_size, int) and t.holds(up.tile_size) and up.tile_size % limits.BBOX_MULTIPLE == 0):
            raise InvalidCanvasError(f"upscale tile size must be a multiple of 8 in [{t.low:g}, {t.high:g}], got {up.tile_size!r}")
        if not (isinstance(up.tile_overlap, int) and not isinstance(up.tile_overlap, bool) and o.holds(up.tile_overlap)):
            raise InvalidCanvasError(f"upscale tile overlap must be an integer in [{o.low:g}, {o.high:g}], got {up.tile_overlap!r}")
        side = max(bbox.width, bbox.height) * up.scale
        if side > limits.MAX_UPSCALE_SIDE:
            raise InvalidCanvasError(
                f"upscaling the {bbox.width}x{bbox.height} box x{up.scale} gives {side} px a side, over the limit of"
                f" {limits.MAX_UPSCALE_SIDE}: use a smaller box or scale"
            )
    if hires is not None:
        s, st = limits.HIRES_SCALE, limits.HIRES_STRENGTH
        if not (_number(hires.scale) and s.holds(hires.scale)):
            raise InvalidCanvasError(f"hires fix scale must be a number in ({s.low:g}, {s.high:g}], got {hires.scale!r}")
        if not (_number(hires.strength) and st.holds(hires.strength)):
            raise InvalidCanvasError(f"hires fix strength must be a number in ({st.low:g}, {st.high:g}], got {hires.strength!r}")
        if int(params.steps * hires.strength) < 1:
            raise InvalidCanvasError(
                f"steps x hires fix strength = {params.steps} x {hires.strength:g} gives no denoising step: raise either"
            )
        if hires.upscaler is not None and (not isinstance(hires.upscaler, str) or not hires.upscaler):
            raise InvalidCanvasError("hires fix upscaler must be an installed upscaler's id, or none for a plain resize")


def check_models(params: Any, main: Any, records: Sequence[Any], default_upscaler: Callable[[], str]) -> None:
    """The upscaler an upscale job or hires fix names is an installed upscaler, and a refine runs on a model
    that can refine (not an edit model). `main`: the job's model record; `records`: the installed ones."""
    known = {r.id: r for r in records}
    names = []
    if params.upscale is not None:
        names.append(("upscale", params.upscale.model or default_upscaler()))
        if params.upscale.refine_strength > 0 and main.kind == "edit":
            raise UnsupportedError(
                f"model {main.id!r} is an edit model, which cannot refine an upscale: choose a main model, or set the refine strength to 0"
            )
    if params.hires_fix is not None:
        if params.hires_fix.upscaler is not None:
            names.append(("hires fix", params.hires_fix.upscaler))
        if main.kind == "edit":
            raise UnsupportedError(f"model {main.id!r} is an edit model: hires fix needs a main model, or turn it off")
    for what, model_id in names:
        record = known.get(model_id)
        if record is None or record.kind != UPSCALER_KIND:
            upscalers = ", ".join(r.id for r in records if r.kind == UPSCALER_KIND) or "none"
            got = f"a {record.kind} model" if record is not None else "not installed"
            raise InvalidCanvasError(f"{what}: {model_id!r} is {got}, not an upscaler; installed upscalers: {upscalers}")


def output_bounds(request: GenerationRequest) -> Bounds:
    """Where a job's result goes on the canvas: the box, or for an upscale job the box's top-left corner and
    its size times the scale (the pixels kept one for one, as Krita and InvokeAI keep an upscale's)."""
    box, up = request.bbox, request.params.upscale
    if up is None:
        return box
    return Bounds(box.x, box.y, box.width * up.scale, box.height * up.scale)


def applies(request: GenerationRequest) -> bool:
    """Whether the job runs here: an upscale job, or a text-to-image job with hires fix."""
    params = request.params
    return params.upscale is not None or (params.hires_fix is not None and request.mode is Mode.TXT2IMG)


def job_request(request: GenerationRequest) -> GenerationRequest:
    """An upscale job as the engine checks and runs it: its size the result's, without layers that only steer a
    generation (region, control, reference: its refine uses the main prompt), without LoRAs when nothing is refined."""
    up = request.params.upscale
    if up is None:
        return request
    out = output_bounds(request)
    params = request.params if up.refine_strength > 0 else dataclasses.replace(request.params, loras=())
    return dataclasses.replace(request, size=(out.width, out.height), params=params, regions=(), controls=(), references=())


# ----------------------------------------------------------------------------------------------- progress


class _Steps:
    """One progress count over the parts of a job (upscaler tiles, refine steps), told to `on_progress`."""

    def __init__(self, on_progress: Callable[[Progress], None] | None, index: int):
        self.on_progress = on_progress
        self.index = index
        self.done = 0
        self.total = 0

    def tell(self, phase: str, preview: Callable[[], Any] | None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(self.index, min(self.done, self.total), self.total, preview, phase))


def _thumbnail(image: np.ndarray, side: int = 384) -> Any:
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    pil.thumbnail((side, side))
    return pil


# ----------------------------------------------------------------------------------------------- running


def run(engine: Any, request: GenerationRequest, record: Any, control_records: list[Any], on_progress, is_cancelled) -> list[GenerationResult]:
    """An upscale job or a hires-fix job on `engine` (inside its job lock, cache pin and LoRA stack)."""
    if request.params.upscale is not None:
        return _upscale_job(engine, request, record, on_progress, is_cancelled)
    return _hires_job(engine, request, record, control_records, on_progress, is_cancelled)


def _upscaler(engine: Any, model_id: str) -> tuple[Any, Any]:
    """The upscaler's record and its loaded module (pinned for the job by the engine's cache scope)."""
    rec = engine.registry.get(model_id)
    if rec.kind != UPSCALER_KIND:
        raise InvalidCanvasError(f"{model_id!r} is a {rec.kind} model, not an upscaler")
    return rec, engine.cache.get(rec, engine.device).model


def upscale_to(module: Any, image: np.ndarray, size: tuple[int, int], steps: _Steps | None, is_cancelled) -> tuple[np.ndarray, int]:
    """An RGB image through the upscaler as many times as it takes to reach `size` (an x2 model twice for
    x4), then resized to exactly `size` (area when the model overshoots). Returns it and the passes run."""
    from . import masks
    from .upscalers import upscale_rgb

    h, w = image.shape[:2]
    passes = _passes(module.scale, max(size[0] / w, size[1] / h))
    out = image
    for _ in range(passes):

        def on_tile(done: int, total: int, partial) -> None:
            if steps is not None:
                steps.done += 1
                steps.tell("upscaling", lambda: _thumbnail(partial()))

        out = upscale_rgb(module, out, on_tile=on_tile, is_cancelled=is_cancelled)
    return masks.resize_image(np.ascontiguousarray(out), size), passes


def _passes(model_scale: int, factor: float) -> int:
    """How many times a model of `model_scale` runs to upscale by `factor` (then resized to it exactly)."""
    passes = 1
    while model_scale**passes < factor - 1e-9:
        passes += 1
    return passes


def _upscaler_tiles(model_scale: int, w: int, h: int, factor: float) -> int:
    """How many tiles the upscaler runs (`upscale_to`) to reach `factor` times a `w` x `h` image."""
    from .tiles import tile_grid
    from .upscalers import UPSCALER_OVERLAP, UPSCALER_TILE

    count = 0
    for _ in range(_passes(model_scale, factor)):
        count += len(tile_grid(w, h, UPSCALER_TILE, min(UPSCALER_OVERLAP, UPSCALER_TILE // 2 - 1)))
        w, h = w * model_scale, h * model_scale
    return count


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """The image padded (mirrored) at its right and bottom to sides that are multiples of `multiple`."""
    import cv2

    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return image
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REFLECT)


def refine_grid(record: Any, width: int, height: int, tile_size: int, overlap: int) -> list[Bounds]:
    """The refine's tiles over a `width` x `height` image (padded to the family's size multiple first)."""
    from . import families
    from .tiles import tile_grid

    m = families.get(record.family).size_multiple
    tile = max(m, tile_size // m * m)
    return tile_grid(width + (-width % m), height + (-height % m), tile, min(overlap, tile // 2), multiple=m)


def refine_params(params: Any, strength: float, seed: int) -> Any:
    """The params of one refine tile: the job's model, prompt and sampling, at `strength`, one image."""
    return dataclasses.replace(params, strength=strength, seed=seed, batch_size=1, scale=1.0, upscale=None, hires_fix=None)


def refine_tile(engine: Any, params: Any, record: Any, image: np.ndarray, bounds: Bounds, on_step=None, is_cancelled=None) -> np.ndarray:
    """One tile of `image` (RGB, padded to the family's size multiple) through img2img: an ordinary engine
    job (`Engine._run`) of `params` (`refine_params`) at the tile's size. Its RGB pixels."""
    from .tiles import crop

    tile_request = GenerationRequest(
        mode=Mode.IMG2IMG, params=params, bbox=Bounds(0, 0, bounds.width, bounds.height),
        size=(bounds.width, bounds.height), init_image=np.ascontiguousarray(crop(image, bounds)),
    )
    return np.asarray(engine._run(tile_request, record, [], on_step, is_cancelled)[0].image)[..., :3]


def refine_tiled(
    engine: Any,
    request: GenerationRequest,
    record: Any,
    image: np.ndarray,
    strength: float,
    seed: int,
    steps: _Steps,
    is_cancelled,
    tile_size: int,
    overlap: int,
) -> tuple[np.ndarray, int]:
    """img2img of `image` (RGB) at `strength` with the request's model and prompt, tile by tile
    (`refine_tile`), blended with feathered weights (invoke_core/tiles.py). `steps.total` counts the planned
    steps already; the pipeline's own count corrects it at the first step. Returns the image and the tiles."""
    from . import families
    from .tiles import TileBlender

    m = families.get(record.family).size_multiple
    h, w = image.shape[:2]
    padded = _pad_to(image, m)
    ph, pw = padded.shape[:2]
    grid = refine_grid(record, w, h, tile_size, overlap)
    blender = TileBlender(pw, ph, 3, grid)
    params = refine_params(request.params, strength, seed)
    per_tile = max(1, int(params.steps * strength))
    first_total: list[int] = []
    for bounds in grid:
        base = steps.done

        def on_step(progress: Progress, _bounds=bounds, _base=base) -> None:
            if progress.phase == "compiling":
                steps.tell("compiling", None)
                return
            if not first_total:  # the pipeline's own count of an img2img's steps (int(steps x strength), about)
                first_total.append(progress.total)
                steps.total += (progress.total - per_tile) * len(grid)
            steps.done = _base + progress.step

            def preview() -> Any:
                from PIL import Image

                small = _thumbnail(blender.partial(padded)[:h, :w])
                tile_preview = progress.preview
                if tile_preview is not None:
                    sx, sy = small.width / w, small.height / h
                    box = (round(_bounds.x * sx), round(_bounds.y * sy), round(_bounds.right * sx), round(_bounds.bottom * sy))
                    small.paste(tile_preview.convert("RGB").resize((max(1, box[2] - box[0]), max(1, box[3] - box[1])), Image.BILINEAR), box[:2])
                return small

            steps.tell("refining", preview)

        blender.add(bounds, refine_tile(engine, params, record, padded, bounds, on_step, is_cancelled))
        steps.done = base + (first_total[0] if first_total else per_tile)
    return blender.result()[:h, :w], len(grid)


def _record_meta(rec: Any) -> dict[str, Any]:
    return {"id": rec.id, "name": rec.name, "hash": rec.hash, "scale": rec.scale}


def _upscale_job(engine: Any, request: GenerationRequest, record: Any, on_progress, is_cancelled) -> list[GenerationResult]:
    from . import families, masks
    from .engine import _metadata, _out_of_memory
    from .errors import GenerationCancelled

    started = time.perf_counter()
    params, up = request.params, request.params.upscale
    if is_cancelled and is_cancelled():
        raise GenerationCancelled("cancelled before start")
    if request.init_image is None:
        raise InvalidCanvasError("the box is empty: there is nothing to upscale (paint or place a picture under it)")
    model_id = up.model or engine.registry.default_model_id(UPSCALER_KIND)
    up_record, module = _upscaler(engine, model_id)
    load_seconds = time.perf_counter() - started
    out = output_bounds(request)
    source = np.asarray(request.init_image)[..., :3]
    alpha = None
    if request.original is not None and (np.asarray(request.original)[..., 3] < 255).any():
        alpha = np.asarray(request.original)[..., 3]
    refine = up.refine_strength > 0
    if refine:
        defaults = families.get(record.family).model_defaults(record) or families.get(record.family).defaults
        tile_size = up.tile_size or max(defaults.width, defaults.height)
    results = []
    with _out_of_memory(engine.device, (out.width, out.height), False):
        for index in range(params.batch_size):
            seed = (params.seed + index) % (1 << 32)
            steps = _Steps(on_progress, index)
            steps.total = _upscaler_tiles(module.scale, source.shape[1], source.shape[0], up.scale)
            if refine:  # planned: the pipeline's own count corrects it at the first refine step
                steps.total += max(1, int(params.steps * up.refine_strength)) * len(refine_grid(record, out.width, out.height, tile_size, up.tile_overlap))
            item_started = time.perf_counter()
            upscaled, passes = upscale_to(module, source, (out.width, out.height), steps, is_cancelled)
            upscale_seconds = time.perf_counter() - item_started
            tiles = 0
            image = upscaled
            if refine:
                image, tiles = refine_tiled(engine, request, record, upscaled, up.refine_strength, seed, steps, is_cancelled, tile_size, up.tile_overlap)
            if alpha is not None:
                image = np.dstack([image, masks.resize_image(np.dstack([alpha] * 3), (out.width, out.height))[..., 0]])
            timings = {
                "load": round(load_seconds, 4) if index == 0 else 0.0,
                "upscale": round(upscale_seconds, 4),
                "refine": round(time.perf_counter() - item_started - upscale_seconds, 4),
                "denoise": round(time.perf_counter() - item_started, 4),
                "total": round(time.perf_counter() - started, 4),
            }
            metadata = _metadata(request, record, engine.device, seed, index, timings)
            metadata.update(
                mode="upscale",
                width=out.width,
                height=out.height,
                generation_size=[out.width, out.height],
                upscale={
                    "model": _record_meta(up_record),
                    "scale": up.scale,
                    "refine_strength": up.refine_strength,
                    "passes": passes,
                    **({"tile_size": tile_size, "tile_overlap": up.tile_overlap, "tiles": tiles} if refine else {}),
                },
            )
            if not refine:  # the main model ran nothing: not recorded as if it had
                for key in ("model", "steps", "cfg_scale", "scheduler", "strength"):
                    metadata.pop(key, None)
            results.append(GenerationResult(image=image, seed=seed, metadata=metadata))
    return results


def _first_pass_size(size: tuple[int, int], scale: float, multiple: int) -> tuple[int, int]:
    return tuple(max(multiple, int(side / scale / multiple + 0.5) * multiple) for side in size)  # type: ignore[return-value]


def _hires_job(engine: Any, request: GenerationRequest, record: Any, control_records: list[Any], on_progress, is_cancelled) -> list[GenerationResult]:
    from . import families, masks

    started = time.perf_counter()
    params, hires = request.params, request.params.hires_fix
    family = families.get(record.family)
    first_size = _first_pass_size(request.size, hires.scale, family.size_multiple)
    up_record = module = None
    if hires.upscaler is not None:
        up_record, module = _upscaler(engine, hires.upscaler)
    results = []
    for index in range(params.batch_size):
        seed = (params.seed + index) % (1 << 32)
        steps = _Steps(on_progress, index)
        steps.total = params.steps + max(1, int(params.steps * hires.strength))
        one = dataclasses.replace(params, seed=seed, batch_size=1, hires_fix=None)
        box = request.bbox
        first_request = dataclasses.replace(request, params=one, size=first_size, bbox=Bounds(box.x, box.y, *first_size))
        offset = [0]
        totals: dict[str, int] = {}

        def relay(progress: Progress, phase: str) -> None:
            if progress.phase == "compiling":
                steps.tell("compiling", None)
                return
            if phase not in totals:
                totals[phase] = progress.total
                planned = params.steps if phase == "first" else max(1, int(params.steps * hires.strength))
                steps.total += progress.total - planned
            steps.done = offset[0] + progress.step
            steps.tell(None if phase == "first" else "refining", progress.render_preview)

        item_started = time.perf_counter()
        first = engine._run(first_request, record, control_records, lambda p: relay(p, "first"), is_cancelled)[0]
        offset[0] = steps.done = totals.get("first", params.steps)
        small = np.asarray(first.image)[..., :3]
        if module is not None:
            upscaled, _passes = upscale_to(module, small, request.size, None, is_cancelled)
        else:
            upscaled = masks.resize_image(np.ascontiguousarray(small), request.size)
        refine_request = dataclasses.replace(
            request, mode=Mode.IMG2IMG, init_image=upscaled, original=None, mask=None,
            params=dataclasses.replace(one, strength=hires.strength),
        )
        refined = engine._run(refine_request, record, control_records, lambda p: relay(p, "refine"), is_cancelled)[0]
        metadata = dict(refined.metadata)
        metadata.update(
            mode=Mode.TXT2IMG.value,
            strength=params.strength,
            batch_index=index,
            batch_size=params.batch_size,
            base_seed=params.seed,
            hires_fix={
                "scale": hires.scale,
                "strength": hires.strength,
                "upscaler": _record_meta(up_record) if up_record is not None else None,
                "first_pass_size": list(first_size),
            },
        )
        timings = dict(metadata.get("timings") or {})
        timings.update(denoise=round(time.perf_counter() - item_started, 4), total=round(time.perf_counter() - started, 4))
        metadata["timings"] = timings
        results.append(GenerationResult(image=refined.image, seed=seed, metadata=metadata))
    return results
