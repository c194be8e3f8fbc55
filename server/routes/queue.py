from __future__ import annotations

from flask import Blueprint

from db import queue

from ..api import API_PREFIX, route
from ..events import QueueItemStatusChanged
from ..errors import ApiError
from .. import live
from ..live import is_live
from ..schemas import INT64_MAX, CountOut, IdsIn, QueueAttemptOut, QueueItemOut, QueueListQuery, QueueStatusOut, WorkerOut
from ..services import services
from .health import queue_status

bp = Blueprint("queue", __name__, url_prefix=API_PREFIX + "/queue")


def _out(item: queue.QueueItemRecord) -> QueueItemOut:
    return QueueItemOut.model_validate(item, from_attributes=True)


def _item_id(item_id: int) -> int:
    if item_id > INT64_MAX:  # beyond SQLite's integers: no such item (not an overflow error)
        raise ApiError(404, f"unknown queue item {item_id}")
    return item_id


def _announce(item: queue.QueueItemRecord) -> None:
    services().events.publish(
        QueueItemStatusChanged(
            item.id, item.batch_id, item.generation_id, item.status, item.error_type, item.error_message, live=is_live(item)
        )
    )


@route(bp, "/items", "GET", summary="List queue items in order", query=QueueListQuery, response=list[QueueItemOut])
def list_items(query: QueueListQuery):
    return [_out(i) for i in queue.list_items(services().db, query.status, query.limit, query.after_id)]


@route(bp, "/items/<int:item_id>", "GET", summary="One queue item", response=QueueItemOut)
def get_item(item_id: int):
    return _out(queue.get_item(services().db, _item_id(item_id)))


@route(bp, "/items/<int:item_id>/attempts", "GET", summary="Every run of an item: its worker and how it ended", response=list[QueueAttemptOut])
def item_attempts(item_id: int):
    return [QueueAttemptOut.model_validate(a, from_attributes=True) for a in queue.list_attempts(services().db, _item_id(item_id))]


@route(bp, "/workers", "GET", summary="The live workers (remote workers; the embedded one in the default)", response=list[WorkerOut], errors=(401,))
def workers():
    s = services()
    listed = getattr(s.worker, "workers", None)
    if listed is not None:
        return [WorkerOut.model_validate(w) for w in listed()]
    engine = s.worker.engine if s.worker else None
    if engine is None:
        return []
    current = s.worker.current_item_id
    return [WorkerOut(name=queue.EMBEDDED_WORKER, device=engine.device.device, loaded=sorted(set(engine.cache.stats().loaded)), item_id=current)]


@route(bp, "/items/<int:item_id>/cancel", "POST", summary="Cancel a pending or running item", response=QueueItemOut, errors=(401, 404, 409))
def cancel_item(item_id: int):
    s = services()
    item = queue.cancel(s.db, _item_id(item_id))
    if item.status == "in_progress":
        s.worker.cancel_current(item_id)  # the worker finishes it as canceled within one step
    else:
        _announce(item)
    return _out(item)


@route(bp, "/cancel-pending", "POST", summary="Cancel every pending item", response=CountOut, errors=(401,))
def cancel_pending():
    s = services()
    ids = queue.cancel_all_pending(s.db)
    for item_id in ids:
        _announce(queue.get_item(s.db, item_id))
    return CountOut(count=len(ids))


@route(bp, "/pause", "POST", summary="Pause: the running item finishes, no new one starts", response=QueueStatusOut, errors=(401,))
def pause():
    services().worker.pause()
    return queue_status()


@route(bp, "/resume", "POST", summary="Resume processing", response=QueueStatusOut, errors=(401,))
def resume():
    services().worker.resume()
    return queue_status()


@route(bp, "/retry", "POST", summary="Put failed or canceled items back in the queue", body=IdsIn, response=list[QueueItemOut], errors=(400, 401, 404, 409, 415, 422))
def retry(body: IdsIn):
    s = services()
    for item_id in body.ids:  # the painting moved on: the next change queues a new live job
        if is_live(queue.get_item(s.db, _item_id(item_id))):
            raise ApiError(409, f"queue item {item_id} is a live-painting render: live items are not retried")
    s.worker.forget_cancel(body.ids)  # a retried item keeps its id; an old cancel must not stop it
    items = queue.retry(s.db, body.ids)
    for item in items:
        _announce(item)
    s.worker.wake(len(items))
    return [_out(i) for i in items]


@route(bp, "/clear", "POST", summary="Remove finished items (their images stay)", response=CountOut, errors=(401,))
def clear():
    return CountOut(count=queue.clear_finished(services().db, keep_priority=live.LIVE_PRIORITY))


@route(bp, "/status", "GET", summary="Counts per status, paused, current item", response=QueueStatusOut, errors=(401,))
def status():
    return queue_status()
