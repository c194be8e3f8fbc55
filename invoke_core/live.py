"""Live painting's fast settings, in one place: per family, and per model where a model is distilled for
few steps (LCM, Turbo, Lightning/Hyper, FLUX.1 schnell, FLUX.2 [klein], Z-Image Turbo) or is a demo.

A live job repaints the box after every change while the artist paints, so it runs with few steps, low
guidance and a fixed seed (the render changes only with the painting). The web reads these from
`GET /api/v1/config` (`live`: per family) and `GET /api/v1/models` (`live_defaults`: a model's or a
LoRA's own) and sends them with the job; the server checks them like any job's.

Pure: no torch. `steps` is the job's step count as for any job: image to image runs `steps x strength`
of them (4 steps at strength 0.6: 2 denoising steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LiveDefaults:
    steps: int
    cfg_scale: float
    scheduler: str
    strength: float  # how far a render departs from the painting (image to image)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "cfg_scale": self.cfg_scale, "scheduler": self.scheduler, "strength": self.strength}


STRENGTH = 0.6  # a sketch is kept as composition and colour, its strokes repainted

# How a model distilled for few steps runs (its guidance is in the weights: CFG 1 is off).
LCM = LiveDefaults(steps=4, cfg_scale=1.0, scheduler="lcm", strength=STRENGTH)  # LCM models and LCM LoRAs
TURBO = LiveDefaults(steps=2, cfg_scale=1.0, scheduler="euler_a", strength=STRENGTH)  # SD/SDXL Turbo
LIGHTNING = LiveDefaults(steps=4, cfg_scale=1.0, scheduler="euler", strength=STRENGTH)  # SDXL-Lightning, Hyper-SD

# A family's models that are not distilled: the fewest steps that still resolve a picture, a fast solver.
FAMILY_LIVE: dict[str, LiveDefaults] = {
    "sd-1": LiveDefaults(steps=10, cfg_scale=5.0, scheduler="dpmpp_2m_karras", strength=STRENGTH),
    "sdxl": LiveDefaults(steps=10, cfg_scale=5.0, scheduler="dpmpp_2m_karras", strength=STRENGTH),
    "sd-3": LiveDefaults(steps=12, cfg_scale=4.0, scheduler="euler", strength=STRENGTH),
    "flux": LiveDefaults(steps=8, cfg_scale=3.5, scheduler="euler", strength=STRENGTH),  # dev's distilled guidance
    "flux2": LiveDefaults(steps=4, cfg_scale=1.0, scheduler="euler", strength=STRENGTH),  # Klein, distilled
    "flux2-dev": LiveDefaults(steps=10, cfg_scale=4.0, scheduler="euler", strength=STRENGTH),
    "chroma": LiveDefaults(steps=10, cfg_scale=3.0, scheduler="euler", strength=STRENGTH),
    "hidream": LiveDefaults(steps=10, cfg_scale=1.0, scheduler="euler", strength=STRENGTH),
    "z-image": LiveDefaults(steps=10, cfg_scale=4.0, scheduler="euler", strength=STRENGTH),
    "qwen-image": LiveDefaults(steps=10, cfg_scale=4.0, scheduler="euler", strength=STRENGTH),
}

UNET_FAMILIES = ("sd-1", "sdxl")
# A distilled model or LoRA told by its name (the usual file and repository names); word-ish matches only.
_NAMED = (
    (re.compile(r"(^|[^a-z])lcm([^a-z]|$)"), LCM),
    (re.compile(r"(^|[^a-z])(lightning|hyper)([^a-z]|$)"), LIGHTNING),
    (re.compile(r"(^|[^a-z])turbo([^a-z]|$)"), TURBO),
)
# A model with defaults of its own runs live with its own guidance and scheduler: at most
# LIVE_MAX_DISTILLED_STEPS steps when those defaults take this few (schnell, Klein, Z-Image Turbo: distilled),
# else at most LIVE_STEPS (FLUX.2 [klein] base, HiDream-I1 Dev and Fast).
DISTILLED_STEPS = 9
LIVE_MAX_DISTILLED_STEPS = 6
LIVE_STEPS = 10


def family_live_defaults(family: str) -> LiveDefaults:
    """The live settings of a family's models that have none of their own."""
    return FAMILY_LIVE[family]


def _named(record: Any) -> LiveDefaults | None:
    text = f"{getattr(record, 'id', '')} {getattr(record, 'name', '')} {Path(str(getattr(record, 'path', '') or '')).name}".lower()
    return next((d for pattern, d in _NAMED if pattern.search(text)), None)


def _lcm_unet(record: Any) -> bool:
    """An LCM-distilled UNet embeds the guidance in the timestep (`time_cond_proj_dim` in its config)."""
    if getattr(record, "format", None) != "diffusers" or not getattr(record, "path", None):
        return False
    from .families.base import cached_config

    return cached_config(Path(record.path) / "unet" / "config.json").get("time_cond_proj_dim") is not None


def live_defaults(record: Any) -> LiveDefaults | None:
    """A model's (or a LoRA's) own live settings where they are not its family's; None: the family's.

    - the built-in SD demos: the LCM setup (4 steps, the LCM scheduler, no CFG);
    - SD1.x/SDXL: an LCM UNet (by its config), or a model or LoRA named LCM, Turbo, Lightning or Hyper;
    - another family's model with defaults of its own (FLUX.1 schnell, FLUX.2 [klein] base, Z-Image Turbo,
      HiDream-I1 Dev/Fast): its guidance and scheduler, few steps.
    """
    family = getattr(record, "family", None)
    if family in UNET_FAMILIES:
        if getattr(record, "builtin", False):
            return LCM
        named = _named(record)
        if named is not None:
            return named
        return LCM if getattr(record, "kind", None) != "lora" and _lcm_unet(record) else None
    if getattr(record, "kind", None) == "lora" or family not in FAMILY_LIVE:
        return None
    from . import families

    own = families.get(family).model_defaults(record) if family in families.NAMES else None
    if own is None:
        return None
    steps = min(own.steps, LIVE_MAX_DISTILLED_STEPS if own.steps <= DISTILLED_STEPS else LIVE_STEPS)
    return LiveDefaults(steps=steps, cfg_scale=own.cfg_scale, scheduler=own.scheduler, strength=STRENGTH)


def describe() -> dict[str, dict[str, Any]]:
    """Every family's live settings, for the API (GET /api/v1/config `live`)."""
    return {name: d.as_dict() for name, d in FAMILY_LIVE.items()}
