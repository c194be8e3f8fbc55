"""Automatic1111's `/sdapi/v1` request and response shapes, and their translation to ours (pure, no I/O).

A1111's payloads carry dozens of fields; the ones we honour are typed here, the rest are ignored (as
A1111 ignores what an extension does not use). Sampler names map to our schedulers; `<lora:name:w>` tags
in a prompt become the job's LoRA stack; a seed of -1 is random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from invoke_core.limits import PROMPT_MAX_CHARS

from .sdapi_upscale import HiresFields

# A1111 sampler name (with its scheduler "automatic" or "karras") -> our scheduler
SAMPLERS: dict[str, str] = {
    "Euler": "euler",
    "Euler a": "euler_a",
    "Heun": "heun",
    "LMS": "lms",
    "DDIM": "ddim",
    "DDPM": "ddpm",
    "PLMS": "pndm",
    "DEIS": "deis",
    "DPM2": "kdpm_2",
    "DPM2 a": "kdpm_2_a",
    "DPM++ 2M": "dpmpp_2m",
    "DPM++ 2M SDE": "dpmpp_2m_sde",
    "DPM++ SDE": "dpmpp_sde",
    "UniPC": "unipc",
    "LCM": "lcm",
}
KARRAS = {"euler": "euler_karras", "dpmpp_2m": "dpmpp_2m_karras", "dpmpp_2m_sde": "dpmpp_2m_sde_karras", "dpmpp_sde": "dpmpp_sde_karras"}
SCHEDULERS = (("automatic", "Automatic"), ("karras", "Karras"))
# the old spelling of a Karras sampler, "DPM++ 2M Karras", still sent by many clients
_KARRAS_SUFFIX = " Karras"
_LORA_OPEN = "<lora:"
MAX_LORA_TAGS = 16


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field("", max_length=PROMPT_MAX_CHARS)
    negative_prompt: str = Field("", max_length=PROMPT_MAX_CHARS)
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = -1
    batch_size: int = Field(1, ge=1, le=16)
    n_iter: int = Field(1, ge=1, le=16)
    sampler_name: str | None = Field(None, max_length=100)
    sampler_index: str | None = Field(None, max_length=100)
    scheduler: str | None = Field(None, max_length=100)
    override_settings: dict[str, Any] = Field(default_factory=dict)
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)


class Txt2ImgIn(_Payload, HiresFields):
    pass


class Img2ImgIn(_Payload):
    init_images: list[str] = Field(min_length=1, max_length=1)
    mask: str | None = None
    denoising_strength: float = Field(0.75, ge=0, le=1)
    mask_blur: int = Field(4, ge=0, le=64)
    inpainting_fill: int = Field(1, ge=0, le=3)
    inpaint_full_res: bool | int = False
    inpaint_full_res_padding: int = Field(32, ge=0, le=256)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)


# A1111's inpainting_fill -> our infill of the transparent parts (its "original" and "latent nothing" keep
# the picture as it is under the mask, which is what our inpaint does where the init image has pixels).
INPAINTING_FILL = {0: "telea", 1: "patchmatch", 2: "patchmatch", 3: "patchmatch"}


def split_lora_tags(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """`a castle <lora:ink:0.8>` -> ("a castle", [("ink", 0.8)]). A linear scan (str.find), at most
    MAX_LORA_TAGS tags; a malformed tag stays in the prompt as text."""
    out, tags, pos = [], [], 0
    while len(tags) < MAX_LORA_TAGS:
        start = prompt.find(_LORA_OPEN, pos)
        if start < 0:
            break
        end = prompt.find(">", start)
        if end < 0:
            break
        name, _, weight = prompt[start + len(_LORA_OPEN): end].partition(":")
        weight = weight.partition(":")[0]  # <lora:name:te_weight:unet_weight>: the first weight
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            out.append(prompt[pos:end + 1])
            pos = end + 1
            continue
        if not name.strip():
            out.append(prompt[pos:end + 1])
        else:
            out.append(prompt[pos:start])
            tags.append((name.strip(), value))
        pos = end + 1
    out.append(prompt[pos:])
    return " ".join("".join(out).split()), tags


def scheduler_for(sampler: str | None, scheduler: str | None) -> str:
    """Our scheduler for an A1111 sampler and scheduler; ValueError naming the ones we have."""
    name = sampler or "Euler a"
    karras = scheduler == "karras"
    if name.endswith(_KARRAS_SUFFIX):
        name, karras = name[: -len(_KARRAS_SUFFIX)], True
    ours = SAMPLERS.get(name)
    if ours is None:
        raise ValueError(f"sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    return KARRAS.get(ours, ours) if karras else ours


def sampler_list() -> list[dict[str, Any]]:
    return [{"name": name, "aliases": [ours], "options": {}} for name, ours in SAMPLERS.items()]


def model_title(record: Any) -> str:
    """How A1111 names a checkpoint: `name [hash10]`."""
    return f"{record.name} [{record.hash[:10]}]" if record.hash else record.name


def model_entry(record: Any) -> dict[str, Any]:
    return {
        "title": model_title(record),
        "model_name": record.name,
        "hash": record.hash[:10] if record.hash else None,
        "sha256": record.hash or None,
        "filename": record.path,
        "config": None,
    }


def matches(record: Any, wanted: str) -> bool:
    """A checkpoint named as clients do: its title, its name, its id, or its short hash."""
    wanted = wanted.strip()
    return wanted in (model_title(record), record.name, record.id) or bool(record.hash and wanted == record.hash[:10])


def info_text(seeds: list[int], payload: _Payload, prompt: str, infotexts: list[str]) -> dict[str, Any]:
    """The `info` of a txt2img/img2img response (a JSON string in A1111's response)."""
    return {
        "prompt": prompt,
        "all_prompts": [prompt] * len(seeds),
        "negative_prompt": payload.negative_prompt,
        "seed": seeds[0] if seeds else -1,
        "all_seeds": seeds,
        "width": payload.width,
        "height": payload.height,
        "steps": payload.steps,
        "cfg_scale": payload.cfg_scale,
        "sampler_name": payload.sampler_name or payload.sampler_index or "Euler a",
        "batch_size": payload.batch_size,
        "infotexts": infotexts,
    }


def strip_data_url(value: str) -> str:
    """Clients send base64 with or without a `data:image/png;base64,` prefix."""
    head, sep, rest = value.partition(",")
    return rest if sep and head.startswith("data:") else value


# sd-webui-controlnet's module names (their prefixes) -> our preprocessors
_MODULES = (
    ("none", "none"), ("canny", "canny"), ("softedge", "soft_edge"), ("lineart", "lineart"), ("scribble", "scribble"),
    ("threshold", "threshold"), ("tile", "tile"), ("blur", "blur"), ("t2ia_color", "color_map"), ("color", "color_map"),
)
_CONTROL_MODES = {0: "balanced", 1: "prompt", 2: "control", "Balanced": "balanced",
                  "My prompt is more important": "prompt", "ControlNet is more important": "control"}
MAX_CONTROL_UNITS = 8


@dataclass(frozen=True)
class ControlUnit:
    image: str  # base64
    model: str  # as the client named it ("control_v11p_sd15_canny [d14c016b]")
    preprocessor: str
    weight: float
    begin: float
    end: float
    mode: str


def control_units(alwayson_scripts: dict[str, Any]) -> list[ControlUnit]:
    """The enabled ControlNet units of `alwayson_scripts` (sd-webui-controlnet's format); ValueError for one
    we cannot run. Other scripts are not ours to run: ignored, as A1111 ignores a script it does not have."""
    script = next((v for k, v in alwayson_scripts.items() if k.lower() == "controlnet"), None)
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        return []
    units = []
    for n, unit in enumerate(args[:MAX_CONTROL_UNITS]):
        if not isinstance(unit, dict) or unit.get("enabled") is False:
            continue
        image = unit.get("image") or unit.get("input_image")
        if isinstance(image, dict):  # newer clients: {"image": ..., "mask": ...}
            image = image.get("image")
        if not isinstance(image, str) or not image:
            raise ValueError(f"ControlNet unit {n}: give its image (base64)")
        module = str(unit.get("module") or "none").lower()
        ours = next((p for prefix, p in _MODULES if module.startswith(prefix)), None)
        if ours is None:
            raise ValueError(f"ControlNet unit {n}: module {module[:100]!r} is not one we run ({', '.join(p for p, _ in _MODULES)})")
        named = str(unit.get("model") or "")[:200]
        model = named.rpartition(" [")[0] or named
        if not model or model.lower() == "none":
            raise ValueError(f"ControlNet unit {n}: name its model (see /api/v1/models)")
        try:
            weight, begin, end = (float(unit.get(k, d)) for k, d in (("weight", 1.0), ("guidance_start", 0.0), ("guidance_end", 1.0)))
        except (TypeError, ValueError):
            raise ValueError(f"ControlNet unit {n}: weight and guidance must be numbers") from None
        units.append(ControlUnit(strip_data_url(image), model, ours, weight, begin, end,
                                 _CONTROL_MODES.get(unit.get("control_mode", 0), "balanced")))
    return units
