"""A1111's hires fix (`enable_hr`) and Extras upscaling, translated onto our hires fix and upscale jobs
(invoke_core/upscale.py). Pure: shapes, plans and pixel maths, no I/O; server/routes/sdapi.py queues the jobs.

A1111's hires fix names the first pass (`width` x `height`) and a factor or a final size; ours names the
final size (the box) and the factor, so the final size is the first pass times the factor, in multiples of
the box's step. Its Latent modes and its plain resizes become our plain resize of the picture (we refine in
pixels); any other name must be an installed upscaler. Extras runs an upscaler model as an upscale job
(x2 or x4, no refine) and sizes the result as A1111 does; its plain resizes answer at once.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from invoke_core import limits
from invoke_core.masks import resize_image
from invoke_core.metadata import A1111_LATENT_MODES, A1111_RESIZES

# A1111's upscalers that are a plain resize (no model), and its latent hires modes, which we run as one
RESIZES: dict[str, Literal["lanczos", "nearest"] | None] = dict(zip(A1111_RESIZES, (None, "lanczos", "nearest")))
LATENT_MODES = A1111_LATENT_MODES
MAX_EXTRAS_IMAGES = 16
MAX_EXTRAS_FACTOR = max(limits.UPSCALE_SCALES)


class HiresFields(BaseModel):
    """The hires-fix fields of A1111's txt2img payload (the rest are ignored, see README.md)."""

    model_config = ConfigDict(extra="ignore")

    enable_hr: bool = False
    hr_scale: float = Field(2.0, gt=0, le=limits.HIRES_SCALE.high)
    hr_upscaler: str | None = Field("Latent", max_length=200)
    hr_resize_x: int = Field(0, ge=0, le=limits.MAX_GENERATION_SIDE)
    hr_resize_y: int = Field(0, ge=0, le=limits.MAX_GENERATION_SIDE)
    denoising_strength: float | None = Field(None, ge=0, le=1)
    hr_prompt: str = Field("", max_length=limits.PROMPT_MAX_CHARS)
    hr_negative_prompt: str = Field("", max_length=limits.PROMPT_MAX_CHARS)


HIRES_DEFAULT_STRENGTH = 0.7  # A1111's (and webuiapi's) hires denoising strength


@dataclass(frozen=True)
class HiresPlan:
    size: tuple[int, int]  # the final picture: our box
    scale: float  # the first pass is the box / this
    strength: float
    upscaler: str | None  # an installed upscaler's id; None: a plain resize


def upscaler_id(name: str, upscalers: list[Any]) -> str:
    """The installed upscaler an A1111 name means (its id or name, any case); ValueError naming the choices."""
    wanted = name.strip().lower()
    found = next((r for r in upscalers if wanted in (r.id.lower(), r.name.lower())), None)
    if found is None:
        choices = ", ".join([*RESIZES, *(r.name for r in upscalers)])
        raise ValueError(f"upscaler {name[:200]!r} is not installed: use one of {choices} (see /sdapi/v1/upscalers)")
    return found.id


def hires_plan(payload: Any, upscalers: list[Any]) -> HiresPlan | None:
    """Our hires fix for an A1111 txt2img payload (None when `enable_hr` is off); ValueError for one we
    cannot run as asked."""
    if not payload.enable_hr:
        return None
    for field, ours in (("hr_prompt", payload.prompt), ("hr_negative_prompt", payload.negative_prompt)):
        theirs = getattr(payload, field)
        if theirs and theirs != ours:
            raise ValueError(f"{field}: the hires pass uses the job's own prompts; leave {field} empty")
    width, height = payload.width, payload.height
    rx, ry = payload.hr_resize_x, payload.hr_resize_y
    scale = rx / width if rx else ry / height if ry else payload.hr_scale
    step = limits.BBOX_MULTIPLE
    size = (max(step, round(width * scale / step) * step), max(step, round(height * scale / step) * step))
    if rx and ry:
        size = (max(step, round(rx / step) * step), max(step, round(ry / step) * step))
        if round(size[1] / scale / step) != round(height / step):
            raise ValueError(
                f"hr_resize_x x hr_resize_y ({rx}x{ry}) must keep the first pass's shape ({width}x{height}): give one of them"
            )
    if not limits.HIRES_SCALE.holds(scale):
        s = limits.HIRES_SCALE
        raise ValueError(f"hires fix upscales by more than {s.low:g} and at most {s.high:g}x, got {scale:g}x")
    strength = HIRES_DEFAULT_STRENGTH if payload.denoising_strength is None else payload.denoising_strength
    if not limits.HIRES_STRENGTH.holds(strength):
        raise ValueError("denoising_strength must be above 0 for a hires fix (the refine's strength)")
    name = (payload.hr_upscaler or "None").strip()
    upscaler = None if name in RESIZES or name in LATENT_MODES else upscaler_id(name, upscalers)
    return HiresPlan(size=size, scale=scale, strength=strength, upscaler=upscaler)


# --- Extras ------------------------------------------------------------------------------------------


class ExtrasIn(BaseModel):
    """A1111's Extras upscale settings (`/extra-single-image`, `/extra-batch-images`)."""

    model_config = ConfigDict(extra="ignore")

    resize_mode: int = Field(0, ge=0, le=1)  # 0: by `upscaling_resize`; 1: to `upscaling_resize_w` x `_h`
    upscaling_resize: float = Field(2.0, gt=0, le=8)
    upscaling_resize_w: int = Field(512, ge=1, le=limits.MAX_UPSCALE_SIDE)
    upscaling_resize_h: int = Field(512, ge=1, le=limits.MAX_UPSCALE_SIDE)
    upscaling_crop: bool = True
    upscaler_1: str | None = Field("None", max_length=200)
    upscaler_2: str | None = Field("None", max_length=200)
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1)
    gfpgan_visibility: float = Field(0, ge=0, le=1)
    codeformer_visibility: float = Field(0, ge=0, le=1)


class ExtraSingleIn(ExtrasIn):
    image: str = Field(min_length=1)


class ExtraImage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: str = Field(min_length=1)
    name: str = Field("", max_length=500)


class ExtraBatchIn(ExtrasIn):
    imageList: list[ExtraImage] = Field(min_length=1, max_length=MAX_EXTRAS_IMAGES)  # noqa: N815 (A1111's name)


@dataclass(frozen=True)
class ExtrasPlan:
    target: tuple[int, int]  # the answer's size
    cover: tuple[int, int]  # the size resized to before the centre crop to `target` (== target: no crop)
    upscaler: str | None  # an installed upscaler's id (an upscale job), or None
    resample: Literal["lanczos", "nearest"] | None  # a plain resize, or None with no upscaler: unchanged
    scale: int  # the upscale job's factor


def extras_plan(payload: ExtrasIn, size: tuple[int, int], upscalers: list[Any]) -> ExtrasPlan:
    """How to answer an Extras call for a picture of `size`; ValueError for what we do not run."""
    if payload.gfpgan_visibility > 0 or payload.codeformer_visibility > 0:
        raise ValueError("face restoration (GFPGAN, CodeFormer) is not run here: set gfpgan_visibility and codeformer_visibility to 0")
    if (payload.upscaler_2 or "None") != "None" and payload.extras_upscaler_2_visibility > 0:
        raise ValueError("a second upscaler blended in is not run here: set upscaler_2 to None or its visibility to 0")
    w, h = size
    if payload.resize_mode == 1:
        target = (payload.upscaling_resize_w, payload.upscaling_resize_h)
        if payload.upscaling_crop:  # A1111: resize to cover the target, then crop its middle
            factor = max(target[0] / w, target[1] / h)
            cover = (max(target[0], round(w * factor)), max(target[1], round(h * factor)))
        else:
            cover = target
    else:
        target = cover = (max(1, round(w * payload.upscaling_resize)), max(1, round(h * payload.upscaling_resize)))
    if max(cover) > limits.MAX_UPSCALE_SIDE:
        raise ValueError(f"the result would be {cover[0]}x{cover[1]}: at most {limits.MAX_UPSCALE_SIDE} px a side")
    name = (payload.upscaler_1 or "None").strip()
    if name in RESIZES:
        return ExtrasPlan(target=target, cover=cover, upscaler=None, resample=RESIZES[name], scale=1)
    upscaler = upscaler_id(name, upscalers)
    factor = max(cover[0] / w, cover[1] / h)
    if factor > MAX_EXTRAS_FACTOR:
        raise ValueError(f"an upscaler model enlarges at most {MAX_EXTRAS_FACTOR}x here, this asks {factor:g}x")
    scale = next(s for s in sorted(limits.UPSCALE_SCALES) if s >= factor)
    return ExtrasPlan(target=target, cover=cover, upscaler=upscaler, resample=None, scale=scale)


def pad_to_step(pixels: np.ndarray) -> np.ndarray:
    """RGB pixels grown right and down to a multiple of the box's step by repeating the edge (an upscale
    job's box is a multiple of it; the repeated edge, unlike transparency, leaves the picture's border as it is)."""
    step = limits.BBOX_MULTIPLE
    h, w = pixels.shape[:2]
    return np.pad(pixels, ((0, -h % step), (0, -w % step), (0, 0)), mode="edge")


def resize(pixels: np.ndarray, size: tuple[int, int], resample: Literal["lanczos", "nearest"]) -> np.ndarray:
    if resample == "nearest":
        return cv2.resize(pixels, size, interpolation=cv2.INTER_NEAREST) if pixels.shape[1::-1] != size else pixels
    return resize_image(np.ascontiguousarray(pixels), size)


def finish(pixels: np.ndarray, plan: ExtrasPlan, size: tuple[int, int], resample: Literal["lanczos", "nearest"] = "lanczos") -> np.ndarray:
    """The answer's pixels from `pixels`: the picture of `size` itself, or its upscale job's result (of the
    padded picture at `plan.scale`): cut to the picture, resized to `plan.cover`, its middle cut to `plan.target`."""
    if plan.upscaler is None and plan.resample is None:
        return pixels
    if plan.upscaler is not None:
        pixels = pixels[: size[1] * plan.scale, : size[0] * plan.scale]
    pixels = resize(pixels, plan.cover, plan.resample or resample)
    (cw, ch), (tw, th) = plan.cover, plan.target
    x, y = (cw - tw) // 2, (ch - th) // 2
    return pixels[y : y + th, x : x + tw]


def html_info(plan: ExtrasPlan, upscaler_name: str) -> str:
    """A1111's `html_info` of an Extras answer: what was done, as its Extras tab prints it."""
    if plan.upscaler is None and plan.resample is None:
        return ""
    w, h = plan.target
    return f"<p>Postprocess upscale to: {w}x{h}, Postprocess upscaler: {html.escape(upscaler_name)}</p>"


def upscaler_list(upscalers: list[Any]) -> list[dict[str, Any]]:
    """`GET /sdapi/v1/upscalers`: A1111's plain resizes, then the installed upscaler models."""
    plain = [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4} for n in RESIZES]
    return plain + [{"name": r.name, "model_name": r.id, "model_path": r.path, "model_url": None, "scale": r.scale} for r in upscalers]
