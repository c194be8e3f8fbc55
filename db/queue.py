"""The persistent job queue: items move pending -> in_progress -> completed | failed | canceled.

Every transition is its own committed transaction, guarded by the status it comes from, so a crash
or a race can never move an item twice. The generation row mirrors its item's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from .errors import Conflict, InvalidInput, NotFound
from .models import QUEUE_STATUSES, Generation, QueueItem, new_id, utcnow
from .session import Database

FINISHED = ("completed", "failed", "canceled")


@dataclass(frozen=True)
class QueueItemRecord:
    id: int
    status: str
    priority: int
    batch_id: str
    position: int
    generation_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True)
class NewJob:
    """One queue item to create: the request that reproduces it, and what it belongs to."""

    request: dict[str, Any]
    seed: int | None = None
    mode: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    model_hash: str | None = None
    canvas_id: str | None = None
    canvas_version: int | None = None
    board_id: str | None = None


def _record(item: QueueItem) -> QueueItemRecord:
    return QueueItemRecord(
        id=item.id,
        status=item.status,
        priority=item.priority,
        batch_id=item.batch_id,
        position=item.position,
        generation_id=item.generation_id,
        created_at=item.created_at,
        started_at=item.started_at,
        finished_at=item.finished_at,
        error_type=item.error_type,
        error_message=item.error_message,
    )


def enqueue(db: Database, jobs: Sequence[NewJob], priority: int = 0) -> list[QueueItemRecord]:
    """Add a batch: one generation row and one pending item per job, all or nothing."""
    if not jobs:
        raise InvalidInput("nothing to enqueue")
    batch_id = new_id()
    with db.write() as s:
        items = []
        for position, job in enumerate(jobs):
            generation = Generation(
                request=job.request,
                seed=job.seed,
                mode=job.mode,
                model_id=job.model_id,
                model_name=job.model_name,
                model_hash=job.model_hash,
                canvas_id=job.canvas_id,
                canvas_version=job.canvas_version,
                board_id=job.board_id,
                status="pending",
            )
            s.add(generation)
            s.flush()
            item = QueueItem(generation_id=generation.id, priority=priority, batch_id=batch_id, position=position)
            s.add(item)
            items.append(item)
        s.flush()
        return [_record(i) for i in items]


def _set_status(s, item: QueueItem, status: str, **fields: Any) -> None:
    item.status = status
    for key, value in fields.items():
        setattr(item, key, value)
    generation_fields = {k: v for k, v in fields.items() if k in ("started_at", "finished_at", "error_type", "error_message")}
    s.execute(update(Generation).where(Generation.id == item.generation_id).values(status=status, **generation_fields))


def claim_next(db: Database) -> QueueItemRecord | None:
    """Take the oldest pending item of the highest priority and mark it in_progress."""
    with db.write() as s:
        item = s.scalars(
            select(QueueItem).where(QueueItem.status == "pending").order_by(QueueItem.priority.desc(), QueueItem.id).limit(1)
        ).first()
        if item is None:
            return None
        _set_status(s, item, "in_progress", started_at=utcnow(), finished_at=None, error_type=None, error_message=None)
        return _record(item)


def finish(
    db: Database,
    item_id: int,
    status: str,
    error_type: str | None = None,
    error_message: str | None = None,
    timings: dict[str, Any] | None = None,
    mode: str | None = None,
) -> QueueItemRecord:
    """in_progress -> completed | failed | canceled; `timings` and the `mode` compile chose are
    recorded on the generation."""
    if status not in FINISHED:
        raise InvalidInput(f"cannot finish with status {status!r}: use one of {', '.join(FINISHED)}")
    with db.write() as s:
        item = _get(s, item_id)
        if item.status != "in_progress":
            raise Conflict(f"queue item {item_id} is {item.status}, not in_progress")
        _set_status(s, item, status, finished_at=utcnow(), error_type=error_type, error_message=error_message)
        extra = {k: v for k, v in (("timings", timings), ("mode", mode)) if v is not None}
        if extra:
            s.execute(update(Generation).where(Generation.id == item.generation_id).values(**extra))
        return _record(item)


def requeue(db: Database, item_id: int) -> QueueItemRecord:
    """in_progress -> pending: the server is stopping cleanly and the job will run on the next start."""
    with db.write() as s:
        item = _get(s, item_id)
        if item.status != "in_progress":
            raise Conflict(f"queue item {item_id} is {item.status}, not in_progress")
        _set_status(s, item, "pending", started_at=None)
        return _record(item)


def cancel(db: Database, item_id: int) -> QueueItemRecord:
    """A pending item is canceled at once; an in_progress one is returned unchanged for the worker to stop."""
    with db.write() as s:
        item = _get(s, item_id)
        if item.status == "pending":
            _set_status(s, item, "canceled", finished_at=utcnow())
        elif item.status != "in_progress":
            raise Conflict(f"queue item {item_id} is already {item.status}")
        return _record(item)


def cancel_all_pending(db: Database) -> list[int]:
    with db.write() as s:
        items = s.scalars(select(QueueItem).where(QueueItem.status == "pending")).all()
        now = utcnow()
        for item in items:
            _set_status(s, item, "canceled", finished_at=now)
        return [i.id for i in items]


def retry(db: Database, item_ids: Sequence[int]) -> list[QueueItemRecord]:
    """failed | canceled -> pending (keeping their place in the order); all ids checked first."""
    with db.write() as s:
        items = [_get(s, i) for i in item_ids]
        for item in items:
            if item.status not in ("failed", "canceled"):
                raise Conflict(f"queue item {item.id} is {item.status}: only failed or canceled items can be retried")
        for item in items:
            _set_status(s, item, "pending", started_at=None, finished_at=None, error_type=None, error_message=None)
        return [_record(i) for i in items]


def clear_finished(db: Database) -> int:
    """Remove completed, failed and canceled items (their generations and images stay)."""
    with db.write() as s:
        return s.execute(delete(QueueItem).where(QueueItem.status.in_(FINISHED))).rowcount


def recover_interrupted(db: Database) -> list[int]:
    """On start: items left in_progress by a crash become failed with "interrupted" (retry puts them back)."""
    with db.write() as s:
        items = s.scalars(select(QueueItem).where(QueueItem.status == "in_progress")).all()
        now = utcnow()
        for item in items:
            _set_status(
                s, item, "failed", finished_at=now, error_type="Interrupted", error_message="interrupted: the server stopped during this job"
            )
        return [i.id for i in items]


def get_item(db: Database, item_id: int) -> QueueItemRecord:
    with db.read() as s:
        return _record(_get(s, item_id))


def list_items(db: Database, status: str | None = None, limit: int = 100, after_id: int | None = None) -> list[QueueItemRecord]:
    """Items in queue order (id ascending), optionally one status, keyset by id."""
    if status is not None and status not in QUEUE_STATUSES:
        raise InvalidInput(f"unknown status {status!r}: use one of {', '.join(QUEUE_STATUSES)}")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be 1..1000")
    query = select(QueueItem).order_by(QueueItem.id).limit(limit)
    if status:
        query = query.where(QueueItem.status == status)
    if after_id is not None:
        query = query.where(QueueItem.id > after_id)
    with db.read() as s:
        return [_record(i) for i in s.scalars(query)]


def status_counts(db: Database) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(select(QueueItem.status, func.count()).group_by(QueueItem.status)).all()
    counts = dict.fromkeys(QUEUE_STATUSES, 0)
    counts.update({status: n for status, n in rows})
    return counts


def _get(s, item_id: int) -> QueueItem:
    item = s.get(QueueItem, item_id) if isinstance(item_id, int) and not isinstance(item_id, bool) else None
    if item is None:
        raise NotFound(f"unknown queue item {item_id!r}")
    return item
