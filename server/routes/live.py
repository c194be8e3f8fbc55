"""Live painting: queue a live job (the live lane's rules are server/live.py's), keep a render."""

from __future__ import annotations

from flask import Blueprint

from db import images

from .. import live
from ..api import API_PREFIX, route
from ..events import ImageAdded
from ..schemas import ImageOut, LiveJobIn, LiveJobOut, LiveKeepIn
from ..services import services

bp = Blueprint("live", __name__, url_prefix=API_PREFIX + "/live")
ERRORS = (400, 401, 404, 409, 415, 422)


@route(
    bp, "/jobs", "POST", summary="Queue a live-painting job: highest priority, in place of the older live jobs",
    body=LiveJobIn, response=LiveJobOut, status=201, errors=ERRORS,
)
def enqueue_job(body: LiveJobIn):
    item, canceled, running, seed = live.enqueue(services(), body.document, body.client)
    return LiveJobOut(
        item_id=item.id, generation_id=item.generation_id, seed=seed, superseded=sorted([i.id for i in canceled] + running)
    )


@route(
    bp, "/images/<image_id>/keep", "POST", summary="Keep a live render: it becomes a gallery image (in a board)",
    body=LiveKeepIn, response=ImageOut, errors=ERRORS,
)
def keep(image_id: str, body: LiveKeepIn):
    s = services()
    record = images.keep_live(s.db, image_id, body.board_id)
    payload = s.image_payload(record)
    s.events.publish(ImageAdded(image=payload))
    return ImageOut.model_validate(payload)
