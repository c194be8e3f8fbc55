"""Canvas jobs: checks that need no torch (at enqueue), and the stored request -> CanvasDocument (in the worker)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import numpy as np

from db import images as db_images
from db.queue import NewJob
from db.session import Database
from invoke_core import families
from invoke_core.compile import generation_size, validate_document
from invoke_core.model_records import CONTROL_KINDS, GENERATING_KINDS, check_edit_request
from invoke_core.errors import InvalidCanvasError, ModelNotFoundError
from invoke_core.lora import check_lora_record
from invoke_core.model_records import ModelRegistry
from invoke_core.prompt_syntax import SyntaxBudget, check_prompts
from invoke_core import upscale
from invoke_core.types import HiresFix, UpscaleSettings
from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LoraSpec, ReferenceSettings, RegionPrompt

from .schemas import JobDocumentIn


def check_document(document: JobDocumentIn, db: Database, registry: ModelRegistry) -> None:
    """Refuse what is certainly wrong before it is queued: everything compile would refuse that does
    not depend on pixels (sizes, parameters, layer settings), the models, and the layer assets."""
    try:
        _check_canvas(document)
    except InvalidCanvasError as exc:
        raise InvalidCanvasError(name_layers(str(exc), document.layers)) from None
    known = {r.id: r for r in registry.list()}
    installed = ", ".join(known)
    model = known.get(document.params.model or registry.default_model_id("main"))
    if model is None:
        raise ModelNotFoundError(f"unknown model {document.params.model!r}: installed models are {installed}")
    if model.kind not in GENERATING_KINDS:
        raise InvalidCanvasError(f"model {model.id!r} is a {model.kind} model; choose a main, inpaint or edit model")
    params, box = document.params, document.bbox
    check_edit_request(params.edit, model, list(known.values()))
    upscale.check_models(params, model, list(known.values()), lambda: registry.default_model_id(upscale.UPSCALER_KIND))
    visible = [layer for layer in document.layers if layer.visible]
    families.get(model.family).check_job(
        scheduler=params.scheduler,
        size=generation_size(box.width, box.height, params.scale),
        regions=any(layer.region is not None for layer in visible),
        controls=any(layer.control is not None for layer in visible),
        loras=bool(params.loras),
        true_cfg=params.true_cfg_scale > 1,
        references=any(layer.kind == "reference" for layer in visible),
        negative=bool(params.negative_prompt) or any(layer.region is not None and layer.region.negative_prompt for layer in visible),
    )
    for lora in document.params.loras:
        record = known.get(lora.model)
        if record is None:
            raise InvalidCanvasError(f"{lora.model!r} is not an installed LoRA model")
        check_lora_record(record, model)
    controls: list[tuple[ControlSettings, Any]] = []
    for layer in document.layers:
        if layer.visible and layer.control is not None:
            record = known.get(layer.control.model)
            if record is None or record.kind not in CONTROL_KINDS:
                raise InvalidCanvasError(
                    f"control layer {layer_label(layer)}: {layer.control.model!r} is not an installed ControlNet model"
                )
            if record.family != model.family:
                raise InvalidCanvasError(
                    f"control layer {layer_label(layer)}: ControlNet {record.id!r} is for {record.family}, the model {model.id!r} is {model.family}"
                )
            settings = ControlSettings(**layer.control.model_dump())
            families.get(model.family).control_type(settings, record, f"control layer {layer_label(layer)}")
            controls.append((settings, record))
        db_images.get_image(db, layer.image_id)  # NotFound names the id
    families.get(model.family).check_controls([s for s, _ in controls], [r for _, r in controls], params.strength)
    references = [layer for layer in visible if layer.kind == "reference"]
    if references:  # each reference layer's IP-Adapter (SD 1.x, SDXL), or none where the family takes the picture itself
        try:
            families.get(model.family).reference_models(
                [reference_settings(layer) for layer in references], registry, model, build=False,
                names=[f"reference layer {layer_label(layer)}" for layer in references],
                regions=any(layer.region is not None for layer in visible),
            )
        except ModelNotFoundError as exc:  # a layer's model, not the job's: the document is what is wrong
            raise InvalidCanvasError(str(exc)) from None


def reference_settings(layer: Any) -> ReferenceSettings:
    """A reference layer's settings from its JSON (the defaults when it has none)."""
    return ReferenceSettings(**layer.reference.model_dump()) if layer.reference is not None else ReferenceSettings()


def _check_canvas(document: JobDocumentIn) -> None:
    """What compile would refuse (sizes, parameters, layer settings) and the prompts' syntax."""
    placeholder = np.zeros((1, 1, 4), np.uint8)  # pixels are checked in the worker, once loaded
    validate_document(build_document(document.model_dump(mode="json"), lambda _id: placeholder))
    budget = SyntaxBudget()  # compel's parser reads so much weighting syntax a job, over all its prompts
    check_prompts(document.params.prompt, document.params.negative_prompt, budget=budget)
    regions = [layer for layer in document.layers if layer.visible and layer.region is not None]
    for layer in regions:
        check_prompts(
            layer.region.prompt, layer.region.negative_prompt, f"prompt of region layer {layer.id!r}", budget
        )


def layer_label(layer: Any) -> str:
    """How a message names a layer: by its UI name when it has one (`"Region 1"`), else by its id."""
    return f'"{layer.name}"' if getattr(layer, "name", None) else repr(layer.id)


def name_layers(message: str, layers: Any) -> str:
    """invoke_core names layers by id (`layer 'lbda891a'`); the user knows them by their UI names.
    Replaces each `layer '<id>'` by `layer "<name>"` (plain substring replaces: linear in the message)."""
    for layer in layers:
        if getattr(layer, "name", None):
            message = message.replace(f"layer {layer.id!r}", f"layer {layer_label(layer)}")
    return message


def split_batch(document: JobDocumentIn, registry: ModelRegistry, **links: Any) -> list[NewJob]:
    """One queue job per batch image: seed, seed+1, ... each stored as a batch of one, so any
    single image can be reproduced from its own request. The front end's `ui` state is not stored
    with the request (the worker never reads it)."""
    params = document.params
    seed = params.seed if params.seed is not None else secrets.randbelow(1 << 32)
    model_id = params.model or registry.default_model_id("main")
    record = next((r for r in registry.list() if r.id == model_id), None)
    jobs = []
    for index in range(params.batch_size):
        item_seed = (seed + index) % (1 << 32)
        item = document.model_copy(update={"params": params.model_copy(update={"seed": item_seed, "batch_size": 1, "model": model_id})})
        jobs.append(
            NewJob(
                request=item.model_dump(mode="json", exclude={"ui"}),
                seed=item_seed,
                model_id=model_id,
                model_name=record.name if record else None,
                model_hash=record.hash if record and record.hash else None,
                **links,
            )
        )
    return jobs


def build_document(request: dict[str, Any], load_pixels: Callable[[str], np.ndarray]) -> CanvasDocument:
    """The stored request (a JobDocumentIn as JSON) with each layer's pixels loaded by asset id.
    The UI-only fields (layer name, locked, color; `ui`) are ignored."""
    doc = JobDocumentIn.model_validate(request)
    layers = []
    for layer in doc.layers:
        layers.append(
            Layer(
                id=layer.id,
                kind=layer.kind,
                x=layer.x,
                y=layer.y,
                pixels=load_pixels(layer.image_id),
                opacity=layer.opacity,
                visible=layer.visible,
                region=(
                    RegionPrompt(layer.region.prompt, layer.region.negative_prompt, layer.region.strength)
                    if layer.region
                    else None
                ),
                control=ControlSettings(**layer.control.model_dump()) if layer.control else None,
                reference=reference_settings(layer) if layer.kind == "reference" else None,
            )
        )
    p = doc.params
    params = GenerationParams(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        model=p.model,
        steps=p.steps,
        cfg_scale=p.cfg_scale,
        scheduler=p.scheduler,
        seed=p.seed or 0,
        batch_size=p.batch_size,
        strength=p.strength,
        mask_blur=p.mask_blur,
        infill=p.infill,
        infill_color=tuple(p.infill_color),
        scale=p.scale,
        loras=tuple(LoraSpec(lo.model, lo.weight) for lo in p.loras),
        edit=p.edit,
        true_cfg_scale=p.true_cfg_scale,
        upscale=UpscaleSettings(**p.upscale.model_dump()) if p.upscale is not None else None,
        hires_fix=HiresFix(**p.hires_fix.model_dump()) if p.hires_fix is not None else None,
    )
    bbox = doc.bbox
    return CanvasDocument(Bounds(bbox.x, bbox.y, bbox.width, bbox.height), tuple(layers), params)


def link_layer_assets(meta: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The result's metadata with each region, control and reference item pointing at the layer it came from: the
    layer's asset (`image_id`), canvas position and UI name/colour, from the stored request. That is what
    recall needs to rebuild the layers. Returns a new dict; items without a known layer are left as they are."""
    layers = {layer.get("id"): layer for layer in request.get("layers") or () if isinstance(layer, dict)}

    def linked(item: dict[str, Any]) -> dict[str, Any]:
        layer = layers.get(item.get("layer_id"))
        if layer is None:
            return item
        ref = {k: layer.get(k) for k in ("image_id", "x", "y", "opacity", "name", "color")}
        return {**item, "layer": ref}

    out = dict(meta)
    regions = meta.get("regions")
    if isinstance(regions, dict) and isinstance(regions.get("items"), list):
        out["regions"] = {**regions, "items": [linked(i) if isinstance(i, dict) else i for i in regions["items"]]}
    for key in ("controls", "references"):
        if isinstance(meta.get(key), list):
            out[key] = [linked(c) if isinstance(c, dict) else c for c in meta[key]]
    return out
