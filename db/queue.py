"""The persistent job queue: items move pending -> in_progress -> completed | failed | canceled.

Every transition is its own committed transaction, guarded by the status it comes from, so a crash
or a race can never move an item twice. The generation row mirrors its item's status.

The row is the source of truth wherever the workers run: a claim names the worker and starts an
attempt (row locked with FOR UPDATE SKIP LOCKED on PostgreSQL, so two workers never take one item);
the holder's heartbeats keep its lease; only the holder may finish the item; an item whose lease
expired (its worker died) is put back for another worker by `reclaim_expired`, that attempt failed
with WorkerLost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update

from .errors import Conflict, InvalidInput, NotFound
from .models import QUEUE_STATUSES, Generation, QueueAttempt, QueueItem, QueueSetting, new_id, utcnow
from .session import Database

FINISHED = ("completed", "failed", "canceled")
EMBEDDED_WORKER = "embedded"  # the in-process worker thread of the single-user default
WORKER_LOST = "WorkerLost"  # the error type of a run whose worker stopped sending heartbeats
# Runs an item may lose to dead workers before it fails (a job that kills its worker every time).
MAX_LOST_ATTEMPTS = 3
# How many of the next pending items of the top priority a worker looks through for one whose model
# it has loaded (the affinity rule), so no item is passed over by more than this many others.
AFFINITY_WINDOW = 8


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
    attempts: int = 0
    worker: str | None = None
    heartbeat_at: datetime | None = None


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    item_id: int
    worker: str
    status: str
    started_at: datetime
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
        attempts=item.attempts,
        worker=item.worker,
        heartbeat_at=item.heartbeat_at,
    )


def enqueue(db: Database, jobs: Sequence[NewJob], priority: int = 0) -> list[QueueItemRecord]:
    """Add a batch: one generation row and one pending item per job, all or nothing."""
    if not jobs:
        raise InvalidInput("nothing to enqueue")
    with db.write() as s:
        return _add_batch(s, jobs, priority)


def _add_batch(s, jobs: Sequence[NewJob], priority: int, lane_key: str | None = None) -> list[QueueItemRecord]:
    """One generation row and one pending item per job, in the caller's transaction."""
    batch_id = new_id()
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
        item = QueueItem(generation_id=generation.id, priority=priority, batch_id=batch_id, position=position, lane_key=lane_key)
        s.add(item)
        items.append(item)
    s.flush()
    return [_record(i) for i in items]


# Any fixed number: the key of the PostgreSQL advisory lock that serialises `enqueue_superseding` callers.
_SUPERSEDE_LOCK = 0x1A7E_0001


def enqueue_superseding(
    db: Database, job: NewJob, priority: int, lane_key: str | None = None
) -> tuple[QueueItemRecord, list[QueueItemRecord], list[int]]:
    """Add one item at `priority` in place of every other item of that priority and `lane_key` (a lane of
    its own, such as live painting's, one per key: a client's): in the same transaction those pending are
    canceled, so never more than one waits in it. Items of other keys are not touched: they wait their
    turn. Returns (the new item, the pending ones canceled, the ids of those in progress): a run cannot be
    stopped from here, the caller asks their workers to stop them. On PostgreSQL a transaction-scoped
    advisory lock serialises callers (two would otherwise each see none pending and both add one); SQLite's
    write transactions are serial already (BEGIN IMMEDIATE)."""
    with db.write() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text(f"SELECT pg_advisory_xact_lock({_SUPERSEDE_LOCK})"))
        same = QueueItem.lane_key.is_(None) if lane_key is None else QueueItem.lane_key == lane_key
        lane = select(QueueItem).where(QueueItem.priority == priority, same)
        pending = s.scalars(lane.where(QueueItem.status == "pending").with_for_update()).all()
        now = utcnow()
        for item in pending:
            _set_status(s, item, "canceled", finished_at=now, error_message="superseded by a newer item")
        running = list(s.scalars(select(QueueItem.id).where(QueueItem.priority == priority, same, QueueItem.status == "in_progress")))
        (item,) = _add_batch(s, [job], priority, lane_key)
        return item, [_record(i) for i in pending], running


def _set_status(s, item: QueueItem, status: str, **fields: Any) -> None:
    item.status = status
    for key, value in fields.items():
        setattr(item, key, value)
    generation_fields = {k: v for k, v in fields.items() if k in ("started_at", "finished_at", "error_type", "error_message")}
    s.execute(update(Generation).where(Generation.id == item.generation_id).values(status=status, **generation_fields))


def claim_next(
    db: Database, worker: str = EMBEDDED_WORKER, prefer_models: frozenset[str] | set[str] = frozenset()
) -> QueueItemRecord | None:
    """Take the oldest pending item of the highest priority and mark it in_progress, held by `worker`.

    `prefer_models`: the models this worker has loaded; among the first AFFINITY_WINDOW pending items
    of the top priority, the oldest for one of them is taken first. Rows another worker is claiming
    right now are skipped (SKIP LOCKED), never waited for.
    """
    # Look before taking the write lock: an idle worker's poll (and the one right after each job, while the
    # saver commits that job's images) must not hold SQLite's write lock, which would put the saver's commit
    # through the busy handler's sleeps.
    with db.read() as s:
        if s.scalar(select(QueueItem.id).where(QueueItem.status == "pending").limit(1)) is None:
            return None
    with db.write() as s:
        pending = select(QueueItem).where(QueueItem.status == "pending")
        if not prefer_models:
            item = s.scalars(
                pending.order_by(QueueItem.priority.desc(), QueueItem.id).limit(1).with_for_update(skip_locked=True)
            ).first()
        else:
            item = _claim_preferred(s, pending, prefer_models)
        if item is None:
            return None
        now = utcnow()
        _set_status(s, item, "in_progress", started_at=now, finished_at=None, error_type=None, error_message=None)
        item.worker, item.heartbeat_at, item.attempts = worker, now, item.attempts + 1
        s.add(QueueAttempt(item_id=item.id, worker=worker, status="in_progress", started_at=now))
        return _record(item)


def _claim_preferred(s, pending, prefer_models) -> QueueItem | None:
    """The first pending item of the top priority for a preferred model (within AFFINITY_WINDOW), else the
    first. The window is read without locks and only the chosen row is locked, each candidate in turn
    (SKIP LOCKED): locking the whole window would make a second worker claiming at the same moment skip
    every row in it and find no work."""
    window = s.execute(
        select(QueueItem.id, QueueItem.priority, Generation.model_id)
        .join(Generation, Generation.id == QueueItem.generation_id)
        .where(QueueItem.status == "pending")
        .order_by(QueueItem.priority.desc(), QueueItem.id)
        .limit(AFFINITY_WINDOW)
    ).all()
    if not window:
        return None
    top = window[0].priority
    order = sorted(window, key=lambda r: (r.priority != top or r.model_id not in prefer_models,))  # stable
    for row in order:
        item = s.scalars(pending.where(QueueItem.id == row.id).with_for_update(skip_locked=True)).first()
        if item is not None:
            return item
    # every row of the window was taken meanwhile: the next one beyond it, as without affinity
    return s.scalars(pending.order_by(QueueItem.priority.desc(), QueueItem.id).limit(1).with_for_update(skip_locked=True)).first()


def _close_attempt(s, item: QueueItem, status: str, error_type: str | None = None, error_message: str | None = None) -> None:
    """The item's open attempt (its latest, in_progress) ends with `status`."""
    s.execute(
        update(QueueAttempt)
        .where(QueueAttempt.item_id == item.id, QueueAttempt.status == "in_progress")
        .values(status=status, finished_at=utcnow(), error_type=error_type, error_message=error_message)
    )


def _check_holder(item: QueueItem, worker: str | None) -> None:
    if worker is not None and item.worker != worker:
        raise Conflict(f"queue item {item.id} is held by {item.worker or 'no worker'}, not {worker}")


def heartbeat(db: Database, worker: str, item_id: int) -> bool:
    """The holder is alive: renew its lease. False when the item is no longer in progress on it
    (finished, canceled, or given to another worker after its lease expired)."""
    with db.write() as s:
        done = s.execute(
            update(QueueItem)
            .where(QueueItem.id == item_id, QueueItem.worker == worker, QueueItem.status == "in_progress")
            .values(heartbeat_at=utcnow())
        ).rowcount
        return bool(done)


def reclaim_expired(db: Database, lease_seconds: float) -> list[QueueItemRecord]:
    """Items whose holder sent no heartbeat for `lease_seconds` (a worker killed or cut off): the attempt
    fails with WorkerLost and the item goes back to pending (keeping its place) for another worker, or fails once it
    lost MAX_LOST_ATTEMPTS runs. Returns the items changed."""
    from datetime import timedelta

    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    changed = []
    with db.write() as s:
        items = s.scalars(
            select(QueueItem)
            .where(QueueItem.status == "in_progress", QueueItem.worker != EMBEDDED_WORKER, QueueItem.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        ).all()
        for item in items:
            message = f"worker {item.worker} stopped responding (no heartbeat for {lease_seconds:g} s)"
            _close_attempt(s, item, "failed", WORKER_LOST, message)
            lost = s.scalar(
                select(func.count()).select_from(QueueAttempt).where(QueueAttempt.item_id == item.id, QueueAttempt.error_type == WORKER_LOST)
            )
            if lost >= MAX_LOST_ATTEMPTS:
                _set_status(s, item, "failed", finished_at=utcnow(), error_type=WORKER_LOST,
                            error_message=f"{message}; {lost} runs lost, not retried again")
            else:
                _set_status(s, item, "pending", started_at=None)
            item.worker, item.heartbeat_at = None, None
            changed.append(_record(item))
    return changed


def list_attempts(db: Database, item_id: int) -> list[AttemptRecord]:
    """Every run of the item, oldest first."""
    with db.read() as s:
        _get(s, item_id)
        rows = s.scalars(select(QueueAttempt).where(QueueAttempt.item_id == item_id).order_by(QueueAttempt.id)).all()
        return [
            AttemptRecord(r.id, r.item_id, r.worker, r.status, r.started_at, r.finished_at, r.error_type, r.error_message)
            for r in rows
        ]


def get_setting(db: Database, key: str) -> str | None:
    with db.read() as s:
        row = s.get(QueueSetting, key)
        return row.value if row else None


def set_setting(db: Database, key: str, value: str) -> None:
    with db.write() as s:
        row = s.get(QueueSetting, key, with_for_update=True)
        if row is None:
            s.add(QueueSetting(key=key, value=value))
        else:
            row.value = value


def finish(
    db: Database,
    item_id: int,
    status: str,
    error_type: str | None = None,
    error_message: str | None = None,
    timings: dict[str, Any] | None = None,
    mode: str | None = None,
    worker: str | None = None,
) -> QueueItemRecord:
    """in_progress -> completed | failed | canceled; `timings` and the `mode` compile chose are
    recorded on the generation. `worker`: only while that worker still holds the item (Conflict if its
    lease was lost and the item given to another)."""
    if status not in FINISHED:
        raise InvalidInput(f"cannot finish with status {status!r}: use one of {', '.join(FINISHED)}")
    with db.write() as s:
        item = _get(s, item_id, lock=True)
        if item.status != "in_progress":
            raise Conflict(f"queue item {item_id} is {item.status}, not in_progress")
        _check_holder(item, worker)
        _close_attempt(s, item, status, error_type, error_message)
        _set_status(s, item, status, finished_at=utcnow(), error_type=error_type, error_message=error_message)
        extra = {k: v for k, v in (("timings", timings), ("mode", mode)) if v is not None}
        if extra:
            s.execute(update(Generation).where(Generation.id == item.generation_id).values(**extra))
        return _record(item)


def requeue(db: Database, item_id: int, worker: str | None = None) -> QueueItemRecord:
    """in_progress -> pending: the server (or worker) is stopping cleanly and the job will run again."""
    with db.write() as s:
        item = _get(s, item_id, lock=True)
        if item.status != "in_progress":
            raise Conflict(f"queue item {item_id} is {item.status}, not in_progress")
        _check_holder(item, worker)
        _close_attempt(s, item, "requeued")
        _set_status(s, item, "pending", started_at=None)
        item.worker, item.heartbeat_at = None, None
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
            item.attempts, item.worker, item.heartbeat_at = 0, None, None
        return [_record(i) for i in items]


def clear_finished(db: Database, keep_priority: int | None = None) -> int:
    """Remove completed, failed and canceled items (their generations and images stay). `keep_priority`: a
    lane whose items stay (live painting's: its item is what marks a generation live, and the lane deletes
    its own, server/live.py)."""
    finished = delete(QueueItem).where(QueueItem.status.in_(FINISHED))
    if keep_priority is not None:
        finished = finished.where(QueueItem.priority != keep_priority)
    with db.write() as s:
        return s.execute(finished).rowcount


def recover_interrupted(db: Database) -> list[int]:
    """On start of the embedded server (the only worker): items left in_progress by a crash become failed
    with "interrupted" (retry puts them back). Never with remote workers: their items keep their leases."""
    with db.write() as s:
        embedded = (QueueItem.worker.is_(None)) | (QueueItem.worker == EMBEDDED_WORKER)
        items = s.scalars(select(QueueItem).where(QueueItem.status == "in_progress", embedded)).all()
        now = utcnow()
        message = "interrupted: the server stopped during this job"
        for item in items:
            _close_attempt(s, item, "failed", "Interrupted", message)
            _set_status(s, item, "failed", finished_at=now, error_type="Interrupted", error_message=message)
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


def _get(s, item_id: int, lock: bool = False) -> QueueItem:
    valid = isinstance(item_id, int) and not isinstance(item_id, bool)
    item = s.get(QueueItem, item_id, with_for_update=lock or None) if valid else None
    if item is None:
        raise NotFound(f"unknown queue item {item_id!r}")
    return item
