"""Recall against this installation: which installed models an image's recorded models are."""

from __future__ import annotations

from typing import Any, Iterable

from invoke_core.model_records import CONTROL_KINDS, GENERATING_KINDS, REFERENCE_KINDS, ModelRecord


def match_model(records: Iterable[ModelRecord], kinds: tuple[str, ...], model_id: str | None, name: str | None, hash_: str | None) -> ModelRecord | None:
    """The installed model a recorded one is: the same id (with the same weights when the hash was recorded),
    else the same weights under another id (a full sha256 or A1111's 10-digit prefix), else the same name.
    None when nothing fits."""
    candidates = [r for r in records if r.kind in kinds]
    for record in candidates:
        if model_id and record.id == model_id and (not hash_ or not record.hash or record.hash == hash_):
            return record
    if hash_:
        hash_ = hash_.lower()
        for record in candidates:
            # A1111 records the first 10 hex digits of the sha256 ("AutoV2"); ours are whole
            if record.hash and (record.hash == hash_ or (len(hash_) >= 8 and record.hash.startswith(hash_))):
                return record
    if name:
        for record in candidates:
            if record.name == name:
                return record
    return None


def resolve_models(recalled: dict[str, Any], records: list[ModelRecord]) -> dict[str, Any]:
    """Point the recalled main model, LoRAs, ControlNets and reference IP-Adapters at installed models (`installed` says if one was
    found; `model` / `model_id` then hold its id, else None)."""
    out = dict(recalled)
    if "model_id" in out or "model_name" in out:
        main = match_model(records, GENERATING_KINDS, out.get("model_id"), out.get("model_name"), out.get("model_hash"))
        out["model_id"] = main.id if main else None
    for key, kinds in (("loras", ("lora",)), ("controls", CONTROL_KINDS)):
        items = []
        for item in out.get(key, ()):
            name = item.get("name") if key == "loras" else item.get("model_name")
            hash_ = item.get("hash") if key == "loras" else item.get("model_hash")
            record = match_model(records, kinds, item.get("model"), name, hash_)
            items.append({**item, "model": record.id if record else None, "installed": record is not None})
        if items:
            out[key] = items
    if out.get("references"):  # a reference's IP-Adapter, where it ran with one (SD 1.x, SDXL)
        out["references"] = [
            {**item, "model": record.id if record else None, "installed": record is not None}
            if "model" in item or "model_name" in item
            else item
            for item in out["references"]
            for record in [match_model(records, REFERENCE_KINDS, item.get("model"), item.get("model_name"), item.get("model_hash"))]
        ]
    hires = out.get("hires_fix")
    if isinstance(hires, dict) and (hires.get("upscaler") or hires.get("upscaler_name")):  # its upscaler model
        record = match_model(records, ("upscaler",), hires.get("upscaler"), hires.get("upscaler_name"), hires.get("upscaler_hash"))
        out["hires_fix"] = {**hires, "upscaler": record.id if record else None, "installed": record is not None}
    return out
