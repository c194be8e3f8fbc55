"""GET /config: the limits, defaults and option lists a job accepts, for the web's fields.

Everything here is generated from the core's own definitions (invoke_core.limits, the scheduler and
preprocessor tables, the enums of invoke_core.types, the model families) and the API schema's defaults, which derive from
invoke_core.types: nothing is copied, so the web's fields cannot drift from what the server accepts.
"""

from __future__ import annotations

import functools
import types
from typing import Union, get_args, get_origin

from flask import Blueprint
from pydantic import BaseModel

from invoke_core import families, limits
from invoke_core import live as live_settings
from invoke_core.preprocess import PREPROCESSORS
from invoke_core.schedulers import SCHEDULER_LABELS
from invoke_core.types import CONTROL_MODE_LABELS, INFILL_LABELS

from .. import live as live_lane
from ..api import API_PREFIX, route
from ..schemas import (
    BBoxIn,
    ConfigOut,
    ControlIn,
    FamilyOut,
    HiresFixIn,
    LayerIn,
    LiveConfigOut,
    LoraIn,
    NumberLimitOut,
    OptionOut,
    ParamsIn,
    PreprocessorOut,
    ReferenceIn,
    UpscaleIn,
    RegionIn,
)

bp = Blueprint("config", __name__, url_prefix=API_PREFIX)

# published name: (the range in invoke_core.limits, the schema model and field that enforce it)
NUMBER_FIELDS: dict[str, tuple[limits.Range, type[BaseModel], str]] = {
    "steps": (limits.STEPS, ParamsIn, "steps"),
    "cfg_scale": (limits.CFG_SCALE, ParamsIn, "cfg_scale"),
    "true_cfg_scale": (limits.TRUE_CFG_SCALE, ParamsIn, "true_cfg_scale"),
    "seed": (limits.SEED, ParamsIn, "seed"),
    "batch_size": (limits.BATCH_SIZE, ParamsIn, "batch_size"),
    "strength": (limits.STRENGTH, ParamsIn, "strength"),
    "mask_blur": (limits.MASK_BLUR, ParamsIn, "mask_blur"),
    "scale": (limits.SCALE, ParamsIn, "scale"),
    "bbox_width": (limits.BBOX_SIDE, BBoxIn, "width"),
    "bbox_height": (limits.BBOX_SIDE, BBoxIn, "height"),
    "lora_weight": (limits.LORA_WEIGHT, LoraIn, "weight"),
    "region_strength": (limits.REGION_STRENGTH, RegionIn, "strength"),
    "control_weight": (limits.CONTROL_WEIGHT, ControlIn, "weight"),
    "control_begin": (limits.CONTROL_BEGIN, ControlIn, "begin"),
    "control_end": (limits.CONTROL_END, ControlIn, "end"),
    "reference_weight": (limits.REFERENCE_WEIGHT, ReferenceIn, "weight"),
    "reference_begin": (limits.REFERENCE_BEGIN, ReferenceIn, "begin"),
    "reference_end": (limits.REFERENCE_END, ReferenceIn, "end"),
    "opacity": (limits.OPACITY, LayerIn, "opacity"),
    "upscale_refine_strength": (limits.REFINE_STRENGTH, UpscaleIn, "refine_strength"),
    "hires_scale": (limits.HIRES_SCALE, HiresFixIn, "scale"),
    "hires_strength": (limits.HIRES_STRENGTH, HiresFixIn, "strength"),
}
# defaults the schema has none for (a required field)
_DEFAULTS_BESIDE_SCHEMA = {"bbox_width": limits.DEFAULT_BBOX_SIDE, "bbox_height": limits.DEFAULT_BBOX_SIDE}


def _is_integer(annotation: object) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_integer(a) for a in get_args(annotation) if a is not type(None))
    return annotation is int


def _number(name: str) -> NumberLimitOut:
    allowed, model, field_name = NUMBER_FIELDS[name]
    info = model.model_fields[field_name]
    default = _DEFAULTS_BESIDE_SCHEMA[name] if info.is_required() else info.default
    return NumberLimitOut(
        min=allowed.low,
        max=allowed.high,
        exclusive_min=allowed.low_open,
        step=allowed.step,
        integer=_is_integer(info.annotation),
        default=default,
    )


@functools.cache
def config() -> ConfigOut:
    params = ParamsIn().model_dump(mode="json")
    control = ControlIn(model="-").model_dump(mode="json", exclude={"model"})
    return ConfigOut(
        numbers={name: _number(name) for name in NUMBER_FIELDS},
        prompt_max_chars=limits.PROMPT_MAX_CHARS,
        max_loras=limits.MAX_LORAS,
        max_layers=limits.MAX_LAYERS,
        max_generation_side=limits.MAX_GENERATION_SIDE,
        bbox_multiple=limits.BBOX_MULTIPLE,
        scale_choices=list(limits.SCALE_CHOICES),
        upscale_scales=list(limits.UPSCALE_SCALES),
        hires_scale_choices=list(limits.HIRES_SCALE_CHOICES),
        schedulers=[OptionOut(name=n, label=label) for n, label in SCHEDULER_LABELS.items()],
        preprocessors=[
            PreprocessorOut(name=n, label=p.label or n, options=dict(p.defaults)) for n, p in PREPROCESSORS.items()
        ],
        infill_methods=[OptionOut(name=m.value, label=label) for m, label in INFILL_LABELS.items()],
        control_modes=[OptionOut(name=m.value, label=label) for m, label in CONTROL_MODE_LABELS.items()],
        defaults={
            "params": params, "control": control, "reference": ReferenceIn().model_dump(mode="json"),
            "upscale": UpscaleIn().model_dump(mode="json"), "hires_fix": HiresFixIn().model_dump(mode="json"),
        },
        families={name: FamilyOut.model_validate(d) for name, d in families.describe().items()},
        live=LiveConfigOut(
            families=live_settings.describe(), debounce_ms=live_lane.DEBOUNCE_MS, seed=live_lane.LIVE_SEED,
            priority=live_lane.LIVE_PRIORITY,
        ),
    )


@route(
    bp,
    "/config",
    "GET",
    summary="Limits, defaults and option lists of a job, for the UI's fields",
    response=ConfigOut,
    errors=(401,),
)
def get_config():
    return config()
