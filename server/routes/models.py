from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from flask import Blueprint

from db.models import new_id
from db.session import protected_paths
from invoke_core import families
from invoke_core.errors import InvokeCoreError
from invoke_core.live import live_defaults
from invoke_core.memory_estimate import model_memory
from invoke_core.model_records import GENERATING_KINDS
from invoke_core.model_install import check_install_source, install_model
from invoke_core.model_scan import scan as scan_models
from invoke_core.limits import WEIGHT_STORAGES
from invoke_core.weight_storage import check_usable, unusable_reason

from ..api import API_PREFIX, route
from ..errors import ApiError
from ..events import ModelInstallProgress
from ..schemas import CacheComponentOut, CacheOut, ModelInstallIn, ModelInstallOut, ModelOut, ModelPatchIn, ModelScanIn, WeightStorageOut
from ..services import services

bp = Blueprint("models", __name__, url_prefix=API_PREFIX + "/models")
log = logging.getLogger(__name__)


def _out(record, default: bool = False, resident: set[str] | frozenset[str] = frozenset()) -> ModelOut:
    s = services()
    options = s.registry.options(record.id)
    engine = s.worker.engine if s.worker else None
    data = record.to_dict()
    label = record.description if record.builtin else None
    family = families.get(record.family) if record.family in families.NAMES else None
    own = family.model_defaults(record) if family else None
    live = live_defaults(record)
    types = list(family.control_types(record)) if family else []
    generating = family is not None and record.kind in GENERATING_KINDS
    reference_kinds = family.reference_kinds(record) if generating else None
    return ModelOut(
        **{k: data[k] for k in ModelOut.model_fields if k in data}, label=label, default=default,
        defaults=own.as_dict() if own else None, control_types=types or None, keep_loaded=record.id in resident,
        live_defaults=live.as_dict() if live else None,
        reference_kinds=None if reference_kinds is None else list(reference_kinds),
        weights=options["weights"], memory_bytes=model_memory(record, engine.device.dtype if engine else "float32", options["weights"]),
    )


def _device() -> str:
    """The device the worker runs models on ("cpu", "cuda:0"), chosen as the worker would when it has none yet."""
    s = services()
    engine = s.worker.engine if s.worker else None
    if engine is not None:
        return engine.device.device
    remote = getattr(s.worker, "workers", None)  # remote workers: the first live one's device
    devices = [w["device"] for w in remote() if w.get("device")] if remote else []
    if devices:
        return sorted(devices)[0]
    from invoke_core.devices import choose_device

    return choose_device(s.config.device, s.config.dtype).device


def _resident() -> set[str]:
    s = services()
    return s.registry.resident_ids() | set(s.config.resident_models)


@route(bp, "", "GET", summary="Installed models (the built-in demo models labelled, the defaults marked)", response=list[ModelOut], errors=(401,))
def list_models():
    registry = services().registry
    records = registry.list()
    defaults = {registry.default_model_id(kind) for kind in {r.kind for r in records}}
    resident = _resident()
    return [_out(r, r.id in defaults, resident) for r in records]


@route(bp, "/install", "POST", summary="Install from a local path, in the background", body=ModelInstallIn, response=ModelInstallOut, status=202, errors=(400, 401, 415, 422))
def install(body: ModelInstallIn):
    s = services()
    # The data folder's database and image files are never read by an install (see safe_paths); what
    # can be refused without reading (those paths, a FIFO, a device) is refused here, with a 422.
    forbidden = protected_paths(s.config.root)
    check_install_source(body.source, forbidden)
    if body.config:
        check_install_source(body.config, forbidden)
    job_id = new_id()
    s.model_jobs[job_id] = {"status": "started", "source": body.source}
    events = s.events
    events.publish(ModelInstallProgress(job_id, body.source, "started"))

    def fail(message: str) -> None:
        s.model_jobs[job_id] = {"status": "failed", "source": body.source, "message": message}
        events.publish(ModelInstallProgress(job_id, body.source, "failed", message=message))

    def work() -> None:
        try:
            record = install_model(
                s.registry, body.source, name=body.name, config=body.config, forbidden=forbidden, base=body.base
            )
        except InvokeCoreError as exc:
            fail(str(exc))
            return
        except BaseException as exc:  # noqa: BLE001 (a job must end: never left "started" by a surprise)
            log.exception("model install %s of %s failed unexpectedly", job_id, body.source)
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            fail(f"install failed: {type(exc).__name__}" + (f": {first}" if first else ""))
            return
        s.model_jobs[job_id] = {"status": "completed", "source": body.source, "model_id": record.id}
        events.publish(ModelInstallProgress(job_id, body.source, "completed", model_id=record.id))

    threading.Thread(target=work, name=f"model-install-{job_id[:8]}", daemon=True).start()
    return ModelInstallOut(job_id=job_id, status="started")


@route(bp, "/scan", "POST", summary="Find and register in place every model under a folder, in the background", body=ModelScanIn, response=ModelInstallOut, status=202, errors=(400, 401, 415, 422))
def scan(body: ModelScanIn):
    """The job's state (GET /install/<job_id>) lists the ids installed, the paths skipped and why, and the
    installed models whose files are missing."""
    s = services()
    forbidden = protected_paths(s.config.root)
    check_install_source(body.path, forbidden)
    if not Path(body.path).expanduser().is_dir():
        raise ApiError(422, f"no folder at {body.path}")
    job_id = new_id()
    s.model_jobs[job_id] = {"status": "started", "source": body.path}
    s.events.publish(ModelInstallProgress(job_id, body.path, "started"))

    def work() -> None:
        try:
            found = scan_models(s.registry, body.path, forbidden)
        except InvokeCoreError as exc:
            s.model_jobs[job_id] = {"status": "failed", "source": body.path, "message": str(exc)}
            s.events.publish(ModelInstallProgress(job_id, body.path, "failed", message=str(exc)))
            return
        except BaseException as exc:  # noqa: BLE001 (a job must end)
            log.exception("model scan %s of %s failed unexpectedly", job_id, body.path)
            message = f"scan failed: {type(exc).__name__}"
            s.model_jobs[job_id] = {"status": "failed", "source": body.path, "message": message}
            s.events.publish(ModelInstallProgress(job_id, body.path, "failed", message=message))
            return
        s.model_jobs[job_id] = {"status": "completed", "source": body.path, **scan_summary(found)}
        s.events.publish(ModelInstallProgress(job_id, body.path, "completed", message=f"{len(found.installed)} model(s) found"))

    threading.Thread(target=work, name=f"model-scan-{job_id[:8]}", daemon=True).start()
    return ModelInstallOut(job_id=job_id, status="started")


def scan_summary(found) -> dict:
    return {
        "installed": [r.id for r in found.installed],
        "already": found.already,
        "skipped": [{"path": p, "reason": why} for p, why in found.skipped],
        "missing": [{"id": r.id, "path": r.path} for r in found.missing],
    }


@route(bp, "/install/<job_id>", "GET", summary="State of a model install job", response=dict, errors=(401, 404))
def install_status(job_id: str):
    job = services().model_jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"unknown install job {job_id!r}")
    return {"job_id": job_id, **job}


@route(bp, "/<model_id>", "DELETE", summary="Remove a model (its files stay where they are)", response=ModelOut, errors=(401, 404, 422))
def remove(model_id: str):
    s = services()
    record = s.registry.remove(model_id)
    if s.worker and s.worker.engine:
        s.worker.engine.cache.drop(model_id)
    return _out(record)


@route(bp, "/<model_id>", "PATCH", summary="A model's memory options: keep it loaded, its weight storage", body=ModelPatchIn, response=ModelOut, errors=(400, 401, 404, 422))
def patch(model_id: str, body: ModelPatchIn):
    s = services()
    if body.weights is not None:
        check_usable(body.weights, _device())  # nf4 / int8 without a CUDA card: a 422 naming what to use
    record = s.registry.set_options(model_id, keep_loaded=body.keep_loaded, weights=body.weights)
    if s.worker and body.keep_loaded is not None:
        s.worker.keep_loaded(model_id, body.keep_loaded or model_id in s.config.resident_models)
    return _out(record, resident=_resident())


@route(bp, "/cache", "GET", summary="What is loaded, RAM and VRAM used", response=CacheOut, errors=(401,))
def cache():
    s = services()
    engine = s.worker.engine if s.worker else None
    device = _device()
    storages = [WeightStorageOut(name=n, usable=unusable_reason(n, device) is None, reason=unusable_reason(n, device)) for n in WEIGHT_STORAGES]
    if engine is None:
        return CacheOut(loaded=[], ram_used=0, vram_used=0, loads=0, hits=0, evictions=0, weight_storages=storages)
    stats = engine.cache.stats()
    now = time.monotonic()
    components = [
        CacheComponentOut(name=c.name, key=c.key, tier=c.tier, bytes=c.size_bytes, idle_seconds=round(now - c.last_used, 3), pinned=c.pinned, models=list(c.models))
        for c in stats.components
    ]
    return CacheOut(
        loaded=list(stats.loaded), ram_used=stats.ram_used, vram_used=stats.vram_used, ram_budget=stats.ram_budget,
        vram_budget=stats.vram_budget, loads=stats.loads, hits=stats.hits, evictions=stats.evictions,
        component_loads=stats.component_loads, offloads=stats.offloads, components=components, weight_storages=storages,
    )
