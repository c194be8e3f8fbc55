"""Scheduler names -> diffusers scheduler classes, built from the model's own scheduler config.

One scheduler per job: diffusers schedulers keep per-run state and are not thread-safe.
"""

from __future__ import annotations

import copy

from typing import Any

from .errors import InvalidCanvasError

# name: (diffusers class name, config overrides)
_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "euler_karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),  # PLMS, as SD ships it
    "deis": ("DEISMultistepScheduler", {}),
    "kdpm_2": ("KDPM2DiscreteScheduler", {}),
    "kdpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),
    "dpmpp_sde_karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

# Flow-matching models (SD 3.x, Flux) integrate a velocity field: the same names, their own classes.
_FLOW_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "heun": ("FlowMatchHeunDiscreteScheduler", {}),
}
# a family's `sampling` -> its table
# Flow matching whose pipelines set the sigmas and the resolution shift `mu` themselves (Flux): only the
# schedulers whose set_timesteps takes both.
_FLOW_SIGMAS_TABLE = {name: _FLOW_TABLE[name] for name in ("euler",)}
_TABLES = {"diffusion": _TABLE, "flow": _FLOW_TABLE, "flow-sigmas": _FLOW_SIGMAS_TABLE}

SCHEDULER_NAMES: tuple[str, ...] = tuple(_TABLE)
assert set(_FLOW_TABLE) <= set(_TABLE), "every flow-matching name is a published name"

# name: the label the UI shows (published by GET /api/v1/config); one per name in _TABLE, same order
SCHEDULER_LABELS: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler Ancestral",
    "euler_karras": "Euler Karras",
    "heun": "Heun",
    "lms": "LMS",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "pndm": "PNDM (PLMS)",
    "deis": "DEIS",
    "kdpm_2": "KDPM 2",
    "kdpm_2_a": "KDPM 2 Ancestral",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_karras": "DPM++ SDE Karras",
    "unipc": "UniPC",
    "lcm": "LCM",
}
assert tuple(SCHEDULER_LABELS) == SCHEDULER_NAMES, "every scheduler needs a label"


def scheduler_names(sampling: str = "diffusion") -> tuple[str, ...]:
    """The scheduler names valid for a family's sampling ("diffusion", "flow" or "flow-sigmas")."""
    return tuple(_TABLES[sampling])


def check_scheduler_name(name: str, sampling: str | None = None, models: str = "") -> str:
    """`name` if it is a scheduler (of `sampling`, when given); else a clear error listing the valid ones.
    `models`: what the error calls the models ("Stable Diffusion 3.5 models")."""
    if name not in _TABLE:
        raise InvalidCanvasError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULER_NAMES)}")
    if sampling is not None and name not in _TABLES[sampling]:
        raise InvalidCanvasError(
            f"scheduler {name!r} does not suit {models or sampling + ' models'}: choose one of {', '.join(_TABLES[sampling])}"
        )
    return name


def make_scheduler(name: str, base_config: Any, seed: int, sampling: str = "diffusion"):
    """A fresh scheduler of the named kind, configured from the model's scheduler config.

    `seed` seeds schedulers with noise of their own (DPM++ SDE's Brownian tree), which would
    otherwise draw a random seed and make the same job give different pixels.
    """
    import inspect

    import diffusers

    class_name, overrides = _TABLES[sampling][check_scheduler_name(name, sampling)]
    cls = getattr(diffusers, class_name)
    if "noise_sampler_seed" in inspect.signature(cls.__init__).parameters:
        overrides = {**overrides, "noise_sampler_seed": seed}
    # from_config re-validates the whole config each time (~2 ms); a copy of the first one made is the same
    key = (class_name, repr(sorted(dict(base_config).items())), repr(sorted(overrides.items())))
    template = _MADE.get(key)
    if template is None:
        template = _MADE[key] = cls.from_config(base_config, **overrides)
        while len(_MADE) > 64:
            _MADE.pop(next(iter(_MADE)))
    return copy.deepcopy(template)


_MADE: dict[tuple[str, str, str], Any] = {}  # never handed out: jobs get copies (schedulers keep state)
