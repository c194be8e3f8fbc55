"""Generation metadata: the dict that reproduces an image, and PNG text chunks that carry it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import atomic_write

METADATA_KEY = "invoke_canvas"

_A1111_SAMPLERS = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "euler_karras": "Euler Karras",
    "heun": "Heun",
    "lms": "LMS",
    "ddim": "DDIM",
    "pndm": "PLMS",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_karras": "DPM++ SDE Karras",
    "unipc": "UniPC",
    "lcm": "LCM",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
}


# A1111's upscaler names that are no model: its plain resizes and its latent hires-fix modes
A1111_RESIZES = ("None", "Lanczos", "Nearest")
A1111_LATENT_MODES = (
    "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
    "Latent (nearest-exact)",
)


def a1111_parameters(meta: dict[str, Any]) -> str:
    """Automatic1111's `parameters` text, so other tools read our images."""
    loras = meta.get("loras") or ()
    # LoRAs as A1111 writes them: `<lora:name:weight>` in the prompt (what reproduces the image there)
    # and a `Lora hashes` field (what tools such as Civitai read to find the files).
    lines = [" ".join([meta.get("prompt", ""), *(f"<lora:{_lora_name(lo)}:{lo.get('weight'):g}>" for lo in loras)]).strip()]
    if meta.get("negative_prompt"):
        lines.append(f"Negative prompt: {meta['negative_prompt']}")
    fields = [
        ("Steps", meta.get("steps")),
        ("Sampler", _A1111_SAMPLERS.get(meta.get("scheduler", ""), meta.get("scheduler"))),
        ("CFG scale", meta.get("cfg_scale")),
        ("True CFG scale", meta.get("true_cfg_scale")),  # not an A1111 field: FLUX.1's with a negative branch
        ("Seed", meta.get("seed")),
        ("Size", f"{meta.get('width')}x{meta.get('height')}"),
        ("Model hash", (meta.get("model") or {}).get("hash", "")[:10]),
        ("Model", (meta.get("model") or {}).get("name")),
        # not an A1111 field (A1111 readers skip it): which family's sampler and scheduler names these are
        ("Model family", (meta.get("model") or {}).get("family")),
    ]
    if meta.get("mode") != "txt2img":
        fields.append(("Denoising strength", meta.get("strength")))
    hires = meta.get("hires_fix")
    if isinstance(hires, dict):  # as A1111 writes its hires fix: Size is the first pass
        first = hires.get("first_pass_size") or (meta.get("width"), meta.get("height"))
        fields[fields.index(("Size", f"{meta.get('width')}x{meta.get('height')}"))] = ("Size", f"{first[0]}x{first[1]}")
        fields += [
            ("Denoising strength", hires.get("strength")),
            ("Hires upscale", hires.get("scale")),
            ("Hires resize", f"{meta.get('width')}x{meta.get('height')}"),
            ("Hires upscaler", _a1111_quote((hires.get("upscaler") or {}).get("name") or "Lanczos")),
        ]
    if loras:
        hashes = ", ".join(f"{_lora_name(lo)}: {lo.get('hash', '')[:10]}" for lo in loras)
        fields.append(("Lora hashes", json.dumps(hashes)))
    for number, control in enumerate(meta.get("controls") or ()):
        fields.append((f"ControlNet {number}", _a1111_control(control)))
    regions = [r for r in (meta.get("regions") or {}).get("items") or () if r.get("use") == "region"]
    for number, region in enumerate(regions, 1):
        fields.append((f"Region {number}", _a1111_region(region)))
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v not in (None, "")))
    return "\n".join(lines)


def _lora_name(lora: dict[str, Any]) -> str:
    # `:`, `<`, `>` and `,` would end the tag or the hashes list early.
    return "".join("_" if c in ":<>," else c for c in str(lora.get("name") or lora.get("id") or "lora"))


_A1111_CONTROL_MODES = {
    "balanced": "Balanced",
    "prompt": "My prompt is more important",
    "control": "ControlNet is more important",
}


def _a1111_quote(text: str) -> str:
    """A field value as A1111 writes one: quoted (JSON) when it holds what would end the field early."""
    return json.dumps(text) if any(c in text for c in ",:\n\"") else text


def _a1111_control(control: dict[str, Any]) -> str:
    """One ControlNet unit as A1111's sd-webui-controlnet writes it: a quoted `Key: value, ...` list."""
    model = control.get("model") or {}
    name = f"{model.get('name', '')} [{model.get('hash', '')[:8]}]" if model.get("hash") else model.get("name", "")
    unit = [
        ("Module", control.get("preprocessor")),
        ("Model", name),
        ("Weight", control.get("weight")),
        ("Guidance Start", control.get("begin")),
        ("Guidance End", control.get("end")),
        ("Control Mode", _A1111_CONTROL_MODES.get(control.get("mode", ""), control.get("mode"))),
        ("Control Type", control.get("control_type")),  # a Union ControlNet's (Forge's "Control Type")
    ]
    return json.dumps(", ".join(f"{k}: {v}" for k, v in unit if v is not None))


def _a1111_region(region: dict[str, Any]) -> str:
    """A regional prompt as a quoted `Prompt: ..., Negative: ..., Strength: ...` list (A1111 has no field of
    its own for them; it shows unknown fields as they are)."""
    unit = [
        ("Prompt", region.get("prompt")),
        ("Negative", region.get("negative_prompt")),
        ("Strength", region.get("strength")),
    ]
    return json.dumps(", ".join(f"{k}: {v}" for k, v in unit if v not in (None, "")))


def png_bytes(image: np.ndarray | Image.Image, meta: dict[str, Any] | None = None) -> bytes:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    info = PngImagePlugin.PngInfo()
    if meta is not None:
        info.add_text(METADATA_KEY, json.dumps(meta, sort_keys=True))
        info.add_text("parameters", a1111_parameters(meta))
    buffer = io.BytesIO()
    # Level 3: a quarter of the encode time of the default 6 for ~10% larger files; a job waits on it.
    pil.save(buffer, format="PNG", pnginfo=info, compress_level=3)
    return buffer.getvalue()


def write_png(path: Path, image: np.ndarray | Image.Image, meta: dict[str, Any] | None = None) -> None:
    """Write atomically: a crash leaves the old file or none, never half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, png_bytes(image, meta), temp_prefix=f".{path.name}.")


def read_png_metadata(path: Path) -> dict[str, Any] | None:
    with Image.open(path) as img:
        text = getattr(img, "text", {}) or {}
    raw = text.get(METADATA_KEY)
    return json.loads(raw) if raw else None
