from __future__ import annotations

from flask import Blueprint, jsonify

from db import queue
from invoke_core import __version__

from ..api import API_PREFIX, openapi_document, route
from ..schemas import HealthOut, QueueStatusOut
from ..services import services

bp = Blueprint("health", __name__, url_prefix=API_PREFIX)


def queue_status() -> QueueStatusOut:
    s = services()
    worker = s.worker
    return QueueStatusOut(
        paused=bool(worker and worker.paused),
        counts=queue.status_counts(s.db),
        current_item_id=worker.current_item_id if worker else None,
    )


@route(bp, "/health", "GET", summary="Version, device and queue state", response=HealthOut, errors=(401,))
def health():
    s = services()
    engine = s.worker.engine if s.worker else None
    return HealthOut(
        status="ok",
        version=__version__,
        device=engine.device.device if engine else getattr(s.worker, "device", None) or s.config.device,
        dtype=engine.device.dtype if engine else s.config.dtype,
        queue=queue_status(),
    )


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(__version__))
