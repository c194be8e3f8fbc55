"""Automatic1111's `/sdapi/v1`, for the clients people already use (the `webuiapi` package, Photoshop and Krita
plugins, chat front ends, scripts). A translation onto our own request types and queue, not a second engine:
each call enqueues ordinary queue items (so they show in the queue, the gallery and history), waits for them
and answers in A1111's shapes, base64 PNGs carrying our metadata and A1111's `parameters` text.
Fields and endpoints supported: README.md, "A1111 API".
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flask import Blueprint, jsonify, request
from PIL import Image
from pydantic import BaseModel

from db import history, queue
from db import images as db_images
from db.png_metadata import read_png_text
from invoke_core.masks import coverage_from_mask_image
from invoke_core.model_records import CONTROL_KINDS
from invoke_core.upscale import UPSCALER_KIND

from ..errors import ApiError
from ..events import QueueItemStatusChanged
from ..jobs import check_document, split_batch
from ..schemas import JobDocumentIn
from ..sdapi_translate import (
    INPAINTING_FILL,
    ControlUnit,
    control_units,
    SCHEDULERS,
    Img2ImgIn,
    Txt2ImgIn,
    info_text,
    matches,
    model_entry,
    model_title,
    sampler_list,
    scheduler_for,
    split_lora_tags,
    strip_data_url,
)
from ..sdapi_upscale import LATENT_MODES, ExtraBatchIn, ExtraSingleIn, ExtrasIn, extras_plan, finish, hires_plan, html_info, pad_to_step, upscaler_list
from ..services import services

bp = Blueprint("sdapi", __name__, url_prefix="/sdapi/v1")
MODEL_SETTING = "sdapi_model"  # the checkpoint `options` selected, shared by every web process
CHECKPOINT_KINDS = ("main", "inpaint")
STATE = "sdapi_state"
WAIT_S = 24 * 3600


@dataclass
class _Active:
    """The items of the A1111 calls this process is answering (for progress, interrupt and skip)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: dict[str, list[int]] = field(default_factory=dict)

    def items(self) -> list[int]:
        with self.lock:
            return [i for ids in self.batches.values() for i in ids]


def _active() -> _Active:
    from flask import current_app

    return current_app.extensions.setdefault(STATE, _Active())


def _body(model: type[BaseModel]) -> BaseModel:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "send a JSON object with Content-Type: application/json")
    return model.model_validate(data)


# --- models ----------------------------------------------------------------------------------------


def _checkpoints() -> list[Any]:
    return [r for r in services().registry.list() if r.kind in CHECKPOINT_KINDS]


def _current_model(override: str | None = None) -> Any:
    s = services()
    wanted = override or queue.get_setting(s.db, MODEL_SETTING)
    records = _checkpoints()
    if wanted:
        found = next((r for r in records if matches(r, wanted)), None)
        if found is None:
            raise ApiError(422, f"unknown checkpoint {wanted!r}: see /sdapi/v1/sd-models")
        return found
    default = s.registry.default_model_id("main")
    return next(r for r in records if r.id == default)


def _lora_id(name: str) -> str:
    loras = [r for r in services().registry.list() if r.kind == "lora"]
    found = next((r for r in loras if name.lower() in (r.id.lower(), r.name.lower())), None)
    if found is None:
        raise ApiError(422, f"unknown LoRA {name!r} in the prompt: see /sdapi/v1/loras")
    return found.id


# --- images in and out -----------------------------------------------------------------------------


def _decode(value: str, what: str) -> Image.Image:
    s = services()
    try:
        data = base64.b64decode(strip_data_url(value), validate=False)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{what} is not base64") from None
    s.store.inspect_upload(data, max_bytes=s.config.max_upload_bytes, max_pixels=s.config.max_image_pixels)
    return Image.open(io.BytesIO(data))


def _asset(pixels: np.ndarray, category: str) -> str:
    s = services()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG", compress_level=1)
    return db_images.add_image(s.db, s.store, buffer.getvalue(), origin="uploaded", category=category).id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- a generation ----------------------------------------------------------------------------------


def _generate(payload: Txt2ImgIn, layers: list[dict], bbox: dict, extra: dict[str, Any]) -> tuple[list[tuple[str, bytes]], list[int], str]:
    """Queue the job, wait for it, return ([(image id, PNG bytes)], seeds, prompt)."""
    model = _current_model(payload.override_settings.get("sd_model_checkpoint"))
    prompt, tags = split_lora_tags(payload.prompt)
    try:
        scheduler = scheduler_for(payload.sampler_name or payload.sampler_index, payload.scheduler)
        units = control_units(payload.alwayson_scripts)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    layers = layers + [_control_layer(n, unit, bbox) for n, unit in enumerate(units)]
    params = {
        "prompt": prompt, "negative_prompt": payload.negative_prompt, "model": model.id, "steps": payload.steps,
        "cfg_scale": payload.cfg_scale, "scheduler": scheduler, "seed": None if payload.seed < 0 else payload.seed % (1 << 32),
        "batch_size": payload.batch_size * payload.n_iter, "loras": [{"model": _lora_id(n), "weight": w} for n, w in tags],
        **extra,
    }
    document = {"bbox": bbox, "layers": layers, "params": params}
    out: list[tuple[str, bytes]] = []
    seeds: list[int] = []
    for generation in _queue_and_wait([document]):
        for image_id in generation.image_ids:
            out.append((image_id, _image_bytes(image_id)))
            seeds.append(generation.seed)
    return out, seeds, prompt


def _queue_and_wait(documents: list[dict[str, Any]]) -> list[Any]:
    """Queue each job document (checked first, all of them, so a bad one queues none), wait for its items
    and return the generations that finished (500 when every item failed)."""
    s = services()
    checked = []
    for data in documents:
        document = JobDocumentIn.model_validate(data)
        check_document(document, s.db, s.registry)
        checked.append(document)
    items = [item for document in checked for item in queue.enqueue(s.db, split_batch(document, s.registry))]
    key = items[0].batch_id
    active = _active()
    with active.lock:
        active.batches[key] = [i.id for i in items]
    try:
        for item in items:
            s.events.publish(QueueItemStatusChanged(item.id, item.batch_id, item.generation_id, item.status))
        s.worker.wake(len(items))
        finished = _wait([i.id for i in items])
    finally:
        with active.lock:
            active.batches.pop(key, None)
    failed = [i for i in finished if i.status == "failed"]
    if failed and len(failed) == len(finished):
        raise ApiError(500, f"generation failed: {failed[0].error_type}: {failed[0].error_message}")
    return [history.get_generation(s.db, item.generation_id) for item in finished if item.status == "completed"]


def _image_bytes(image_id: str) -> bytes:
    s = services()
    return s.store.read(db_images.get_image(s.db, image_id).file_name)


def _control_layer(n: int, unit: ControlUnit, bbox: dict) -> dict:
    """A ControlNet unit as a control layer over the box (its image resized to the box, as A1111 does)."""
    controlnets = [r for r in services().registry.list() if r.kind in CONTROL_KINDS]
    model = next((r for r in controlnets if unit.model.lower() in (r.id.lower(), r.name.lower())), None)
    if model is None:
        raise ApiError(422, f"ControlNet unit {n}: unknown model {unit.model!r}; installed: {', '.join(r.id for r in controlnets)}")
    image = _decode(unit.image, f"ControlNet unit {n} image").convert("RGBA").resize((bbox["width"], bbox["height"]))
    return {
        "id": f"control-{n}", "kind": "control", "x": bbox["x"], "y": bbox["y"],
        "image_id": _asset(np.asarray(image), "control"),
        "control": {"model": model.id, "preprocessor": unit.preprocessor, "weight": unit.weight,
                    "begin": unit.begin, "end": unit.end, "mode": unit.mode},
    }


def _wait(ids: list[int]) -> list[queue.QueueItemRecord]:
    s = services()
    deadline = time.monotonic() + WAIT_S
    while True:
        items = [queue.get_item(s.db, i) for i in ids]
        if all(i.status in queue.FINISHED for i in items) or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def _respond(payload: BaseModel, results: list[tuple[str, bytes]], seeds: list[int], prompt: str, images: list[bytes] | None = None):
    pngs = images if images is not None else [data for _, data in results]
    infotexts = [read_png_text(data).get("parameters", "") for _, data in results]
    return jsonify({
        "images": [_b64(d) for d in pngs],
        "parameters": payload.model_dump(mode="json", exclude={"init_images", "mask"}),
        "info": json.dumps(info_text(seeds, payload, prompt, infotexts)),
    })


@bp.post("/txt2img")
def txt2img():
    payload = _body(Txt2ImgIn)
    bbox = {"x": 0, "y": 0, "width": payload.width, "height": payload.height}
    extra: dict[str, Any] = {}
    hires = _refusing(hires_plan, payload, _upscalers())
    if hires is not None:  # A1111's width x height is the first pass; our box is the final picture
        bbox = {**bbox, "width": hires.size[0], "height": hires.size[1]}
        extra["hires_fix"] = {"scale": hires.scale, "strength": hires.strength, "upscaler": hires.upscaler}
    results, seeds, prompt = _generate(payload, [], bbox, extra)
    return _respond(payload, results, seeds, prompt)


@bp.post("/img2img")
def img2img():
    payload = _body(Img2ImgIn)
    init = _decode(payload.init_images[0], "init_images[0]").convert("RGBA")
    if init.size != (payload.width, payload.height):  # A1111's resize_mode 0: just resize
        init = init.resize((payload.width, payload.height), Image.Resampling.LANCZOS)
    pixels = np.asarray(init)
    layers = [{"id": "init", "kind": "raster", "image_id": _asset(pixels, "layer")}]
    bbox = {"x": 0, "y": 0, "width": payload.width, "height": payload.height}
    if payload.mask is not None:
        mask = _decode(payload.mask, "mask").convert("RGBA")
        if mask.size != init.size:
            mask = mask.resize(init.size, Image.Resampling.NEAREST)
        covered = np.asarray(mask).copy()
        if payload.inpainting_mask_invert:
            covered[..., :3] = 255 - covered[..., :3]
        coverage = coverage_from_mask_image(covered)
        layers.append({"id": "mask", "kind": "inpaint_mask", "image_id": _asset(coverage, "mask")})
        if payload.inpaint_full_res:
            bbox = _masked_box(coverage[..., 3] > 0, payload.inpaint_full_res_padding, init.size) or bbox
    extra = {"strength": payload.denoising_strength, "mask_blur": payload.mask_blur,
             "infill": INPAINTING_FILL[payload.inpainting_fill]}
    results, seeds, prompt = _generate(payload, layers, bbox, extra)
    if (bbox["width"], bbox["height"]) == init.size:
        return _respond(payload, results, seeds, prompt)
    # "Inpaint only masked": the box was generated; A1111 answers with the whole picture, the box pasted in
    whole = []
    for _, data in results:
        canvas = init.copy()
        canvas.alpha_composite(Image.open(io.BytesIO(data)).convert("RGBA"), (bbox["x"], bbox["y"]))
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG")
        whole.append(buffer.getvalue())
    return _respond(payload, results, seeds, prompt, images=whole)


# --- Extras and upscalers ---------------------------------------------------------------------------


def _upscalers() -> list[Any]:
    return [r for r in services().registry.list() if r.kind == UPSCALER_KIND]


def _refusing(plan, *args):
    try:
        return plan(*args)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


def _extras(payload: ExtrasIn, images: list[tuple[str, str]]) -> tuple[list[str], str]:
    """Each picture (base64, what to call it in errors) through the Extras settings: the upscaler models as
    upscale jobs in one batch, plain resizes at once. Returns the answers (base64 PNGs) and `html_info`."""
    pictures = [np.asarray(_decode(data, what).convert("RGB")) for data, what in images]
    upscalers = _upscalers()
    plans = [_refusing(extras_plan, payload, (p.shape[1], p.shape[0]), upscalers) for p in pictures]
    jobs = [n for n, plan in enumerate(plans) if plan.upscaler is not None]
    done: dict[int, np.ndarray] = {}
    if jobs:
        model = _current_model()
        documents = []
        for n in jobs:
            padded = pad_to_step(pictures[n])
            documents.append({
                "bbox": {"x": 0, "y": 0, "width": padded.shape[1], "height": padded.shape[0]},
                "layers": [{"id": "picture", "kind": "raster", "image_id": _asset(np.dstack([padded, np.full(padded.shape[:2], 255, np.uint8)]), "layer")}],
                "params": {"model": model.id, "upscale": {"model": plans[n].upscaler, "scale": plans[n].scale, "refine_strength": 0}},
            })
        generations = _queue_and_wait(documents)
        if len(generations) != len(jobs):  # some failed (all failed: a 500 already) or were interrupted
            raise ApiError(409, "the upscale was interrupted, or one of its pictures failed: see the queue")
        for n, generation in zip(jobs, generations):
            done[n] = np.asarray(Image.open(io.BytesIO(_image_bytes(generation.image_ids[0]))).convert("RGB"))
    out = []
    for n, (picture, plan) in enumerate(zip(pictures, plans)):
        pixels = finish(done.get(n, picture), plan, (picture.shape[1], picture.shape[0]))
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(buffer, format="PNG")
        out.append(_b64(buffer.getvalue()))
    return out, html_info(plans[0], payload.upscaler_1 or "None")


@bp.post("/extra-single-image")
def extra_single_image():
    payload = _body(ExtraSingleIn)
    images, info = _extras(payload, [(payload.image, "image")])
    return jsonify({"html_info": info, "image": images[0]})


@bp.post("/extra-batch-images")
def extra_batch_images():
    payload = _body(ExtraBatchIn)
    images, info = _extras(payload, [(item.data, f"imageList[{n}]") for n, item in enumerate(payload.imageList)])
    return jsonify({"html_info": info, "images": images})


@bp.get("/upscalers")
def upscalers():
    return jsonify(upscaler_list(_upscalers()))


@bp.get("/latent-upscale-modes")
def latent_upscale_modes():
    return jsonify([{"name": name} for name in LATENT_MODES])


def _masked_box(covered: np.ndarray, padding: int, size: tuple[int, int]) -> dict | None:
    """The mask's bounding box grown by `padding`, in multiples of 8, inside the image."""
    ys, xs = np.nonzero(covered)
    if not len(xs):
        return None
    w, h = size
    x0, y0 = max(0, int(xs.min()) - padding), max(0, int(ys.min()) - padding)
    x1, y1 = min(w, int(xs.max()) + 1 + padding), min(h, int(ys.max()) + 1 + padding)
    bw, bh = max(8, (x1 - x0 + 7) // 8 * 8), max(8, (y1 - y0 + 7) // 8 * 8)
    x0, y0 = min(x0, max(0, w - bw)), min(y0, max(0, h - bh))
    return {"x": x0, "y": y0, "width": min(bw, w), "height": min(bh, h)}


# --- state -----------------------------------------------------------------------------------------


@bp.get("/progress")
def progress():
    s = services()
    ids = _active().items()
    items = [queue.get_item(s.db, i) for i in ids]
    done = sum(1 for i in items if i.status in queue.FINISHED)
    running = next((i for i in items if i.status == "in_progress"), None)
    latest = s.events.latest_progress(running.id) if running else None
    step, total = (latest.step, latest.total) if latest else (0, 0)
    fraction = (done + (step / total if total else 0.0)) / len(items) if items else 0.0
    preview = latest.preview.partition(",")[2] if latest and latest.preview else None
    return jsonify({
        "progress": round(fraction, 4),
        "eta_relative": 0.0,
        "state": {
            "skipped": False, "interrupted": False, "job": f"task({running.id})" if running else "",
            "job_count": len(items) - done, "job_timestamp": "", "job_no": done,
            "sampling_step": step, "sampling_steps": total,
        },
        "current_image": preview,
        "textinfo": None,
    })


def _stop(pending_too: bool) -> None:
    s = services()
    for item_id in _active().items():
        item = queue.get_item(s.db, item_id)
        if item.status == "in_progress":
            s.worker.cancel_current(item_id)
        elif item.status == "pending" and pending_too:
            queue.cancel(s.db, item_id)


@bp.post("/interrupt")
def interrupt():
    """Stop the running A1111 job at its next step and drop the rest of its batch."""
    _stop(pending_too=True)
    return jsonify(None)


@bp.post("/skip")
def skip():
    """Stop the image being made; the rest of the batch goes on."""
    _stop(pending_too=False)
    return jsonify(None)


@bp.get("/options")
def get_options():
    model = _current_model()
    return jsonify({"sd_model_checkpoint": model_title(model), "sd_checkpoint_hash": model.hash or None,
                    "samples_format": "png", "CLIP_stop_at_last_layers": 1, "sd_lora": "None"})


@bp.post("/options")
def set_options():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object of options")
    wanted = body.get("sd_model_checkpoint")
    if wanted is not None:
        if not isinstance(wanted, str):
            raise ApiError(422, "sd_model_checkpoint must be a string")
        model = _current_model(wanted)  # 422 for an unknown one
        queue.set_setting(services().db, MODEL_SETTING, model.id)
    return jsonify(None)  # other options are A1111's own settings: accepted, not applied


@bp.get("/sd-models")
def sd_models():
    return jsonify([model_entry(r) for r in _checkpoints()])


@bp.get("/samplers")
def samplers():
    return jsonify(sampler_list())


@bp.get("/schedulers")
def schedulers():
    return jsonify([{"name": n, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False} for n, label in SCHEDULERS])


@bp.get("/loras")
def loras():
    return jsonify([{"name": r.name, "alias": r.id, "path": r.path, "metadata": {}}
                    for r in services().registry.list() if r.kind == "lora"])


@bp.get("/scripts")
def scripts():
    return jsonify({"txt2img": [], "img2img": []})  # no A1111 scripts or extensions


@bp.post("/png-info")
def png_info():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("image"), str):
        raise ApiError(400, 'send {"image": "<base64 PNG>"}')
    try:
        data = base64.b64decode(strip_data_url(body["image"]))
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not base64") from None
    chunks = read_png_text(data)
    return jsonify({"info": chunks.get("parameters", ""), "items": {k: v for k, v in chunks.items() if k != "parameters"},
                    "parameters": {}})
