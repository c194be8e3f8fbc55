from __future__ import annotations

from flask import Blueprint

from db import canvases, queue

from ..api import API_PREFIX, route
from ..canvas_patch import patch_layers
from ..errors import ApiError
from ..events import QueueItemStatusChanged
from ..jobs import check_document, split_batch
from ..schemas import (
    CanvasLoadOut,
    CanvasLoadQuery,
    CanvasOut,
    CanvasRenameIn,
    CanvasSaveIn,
    CanvasVersionOut,
    CountOut,
    JobDocumentIn,
    JobIn,
    JobOut,
)
from ..services import services

bp = Blueprint("canvas", __name__, url_prefix=API_PREFIX + "/canvas")
ERRORS = (400, 401, 404, 409, 415, 422)


def _out(record: canvases.CanvasRecord) -> CanvasOut:
    return CanvasOut.model_validate(record, from_attributes=True)


@route(bp, "/jobs", "POST", summary="Queue a generation from a canvas document (inline or saved)", body=JobIn, response=JobOut, status=201, errors=ERRORS)
def enqueue_job(body: JobIn):
    s = services()
    version = None
    if body.document is not None:
        document = body.document
    else:
        record, raw = canvases.load_canvas(s.db, body.canvas_id, body.version)
        document = JobDocumentIn.from_saved(raw)  # empty layers (no pixels yet) left out
        version = body.version or record.current_version
    check_document(document, s.db, s.registry)
    if body.board_id is not None:
        from db import boards

        boards.get_board(s.db, body.board_id)
    jobs = split_batch(document, s.registry, canvas_id=body.canvas_id, canvas_version=version, board_id=body.board_id)
    items = queue.enqueue(s.db, jobs, priority=body.priority)
    for item in items:
        s.events.publish(QueueItemStatusChanged(item.id, item.batch_id, item.generation_id, item.status))
    s.worker.wake(len(items))
    return JobOut(
        batch_id=items[0].batch_id,
        item_ids=[i.id for i in items],
        generation_ids=[i.generation_id for i in items],
        seeds=[j.seed for j in jobs],
    )


@route(bp, "", "POST", summary="Save a canvas document (a new version; autosaves are capped)", body=CanvasSaveIn, response=CanvasOut, status=201, errors=ERRORS)
def save(body: CanvasSaveIn):
    s = services()
    document = body.document.model_dump(mode="json", exclude_unset=True)  # what was sent, validated
    patch_layers(s, document, body.tiles)
    try:
        record = canvases.save_canvas(
            s.db,
            body.name,
            document,
            body.canvas_id,
            body.autosave,
            base_version=body.base_version,
            create=body.create,
            writer=body.client,
        )
    except canvases.VersionConflict as exc:
        raise ApiError(409, str(exc), {"current_version": exc.current_version}, code="version_conflict") from None
    return _out(record)


@route(bp, "", "GET", summary="Saved canvases", response=list[CanvasOut], errors=(401,))
def list_all():
    return [_out(r) for r in canvases.list_canvases(services().db)]


@route(bp, "/<canvas_id>", "GET", summary="Load a canvas (latest or ?version=N)", query=CanvasLoadQuery, response=CanvasLoadOut)
def load(canvas_id: str, query: CanvasLoadQuery):
    record, document = canvases.load_canvas(services().db, canvas_id, query.version)
    return CanvasLoadOut(canvas=_out(record), document=document)


@route(bp, "/<canvas_id>", "PATCH", summary="Rename a canvas", body=CanvasRenameIn, response=CanvasOut, errors=ERRORS)
def rename(canvas_id: str, body: CanvasRenameIn):
    return _out(canvases.rename_canvas(services().db, canvas_id, body.name))


@route(bp, "/<canvas_id>", "DELETE", summary="Delete a canvas and its versions", response=CountOut, errors=(401, 404))
def delete(canvas_id: str):
    canvases.delete_canvas(services().db, canvas_id)
    return CountOut(count=1)


@route(bp, "/<canvas_id>/versions", "GET", summary="A canvas's saved versions", response=list[CanvasVersionOut])
def versions(canvas_id: str):
    return [CanvasVersionOut.model_validate(v, from_attributes=True) for v in canvases.list_versions(services().db, canvas_id)]
