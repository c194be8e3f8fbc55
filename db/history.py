"""Generation history: what was asked for (the whole request), with which model and seed, how it went.

Lists are newest first with keyset pagination on (created_at, id): `next_cursor` is an opaque string
to pass back as `cursor`; it stays valid while rows are added or removed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, select, tuple_
from sqlalchemy.orm import Session

from .canvases import MAX_DOCUMENT_BYTES, validate_document
from .errors import InvalidInput, NotFound
from .models import QUEUE_STATUSES, UNLISTED_CATEGORIES, Board, Canvas, Generation, Image, QueueItem

if TYPE_CHECKING:
    from .session import Database

MAX_LIMIT = 500
UPDATABLE = frozenset({"status", "started_at", "finished_at", "timings", "error_type", "error_message"})


@dataclass(frozen=True)
class GenerationRecord:
    id: str
    request: dict[str, Any]
    canvas_id: str | None
    canvas_version: int | None
    board_id: str | None
    model_id: str | None
    model_name: str | None
    model_hash: str | None
    seed: int | None
    mode: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, Any] | None
    error_type: str | None
    error_message: str | None
    image_ids: tuple[str, ...]  # the images it produced, oldest first


@dataclass(frozen=True)
class GenerationPage:
    items: list[GenerationRecord]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True)
class ImageHistory:
    image_id: str
    generation: GenerationRecord | None  # None: uploaded, or its generation row is gone
    canvas_generations: list[GenerationRecord]  # the same canvas's other generations, newest first


# --- helpers -----------------------------------------------------------------------------------


def _records(s: Session, rows: list[Generation]) -> list[GenerationRecord]:
    images: dict[str, list[str]] = {}
    if rows:
        for gen_id, image_id in s.execute(
            select(Image.generation_id, Image.id)
            .where(Image.generation_id.in_([g.id for g in rows]))
            .order_by(Image.created_at, Image.seq)
        ):
            images.setdefault(gen_id, []).append(image_id)
    return [
        GenerationRecord(
            id=g.id,
            request=g.request,
            canvas_id=g.canvas_id,
            canvas_version=g.canvas_version,
            board_id=g.board_id,
            model_id=g.model_id,
            model_name=g.model_name,
            model_hash=g.model_hash,
            seed=g.seed,
            mode=g.mode,
            status=g.status,
            created_at=g.created_at,
            started_at=g.started_at,
            finished_at=g.finished_at,
            timings=g.timings,
            error_type=g.error_type,
            error_message=g.error_message,
            image_ids=tuple(images.get(g.id, ())),
        )
        for g in rows
    ]


def _get(s: Session, generation_id: str) -> Generation:
    gen = s.get(Generation, generation_id) if isinstance(generation_id, str) else None
    if gen is None:
        raise NotFound(f"no generation with id {generation_id!r}")
    return gen


def _require(s: Session, model: type, id_: str, what: str) -> None:
    if not isinstance(id_, str) or s.get(model, id_) is None:
        raise NotFound(f"no {what} with id {id_!r}")


def _check_status(status: object) -> str:
    if status not in QUEUE_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(QUEUE_STATUSES)}, not {status!r}")
    return status  # type: ignore[return-value]


def _time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime or None")
    if value.tzinfo is not None:  # stored as naive UTC
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _text(value: object, field: str, max_len: int | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string or None")
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(f"{field} is longer than {max_len} characters")
    return value


def _limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def encode_cursor(created_at: datetime, generation_id: str) -> str:
    raw = f"{created_at.isoformat()}|{generation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, generation_id = raw.split("|")
        return datetime.fromisoformat(stamp), generation_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"malformed cursor {cursor!r}") from None


def in_hidden_lane(priority: int):
    """A generation of the lane at `priority` (its queue item's) with no image kept in the gallery."""
    in_lane = exists().where(QueueItem.generation_id == Generation.id, QueueItem.priority == priority)
    kept = exists().where(Image.generation_id == Generation.id, Image.category.not_in(UNLISTED_CATEGORIES))
    return and_(in_lane, ~kept)


def _page(s: Session, stmt, limit: int, cursor: str | None) -> GenerationPage:
    if cursor is not None:
        stamp, gen_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Generation.created_at, Generation.id) < tuple_(stamp, gen_id))
    rows = list(s.scalars(stmt.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return GenerationPage(_records(s, rows), next_cursor)


# --- public API --------------------------------------------------------------------------------


def record_generation(
    db: Database,
    request: dict[str, Any],
    *,
    canvas_id: str | None = None,
    canvas_version: int | None = None,
    board_id: str | None = None,
    model_id: str | None = None,
    model_name: str | None = None,
    model_hash: str | None = None,
    seed: int | None = None,
    mode: str | None = None,
    status: str = "pending",
) -> GenerationRecord:
    """A new generation row holding the whole request (layers by asset id, never pixels)."""
    req = validate_document(request, MAX_DOCUMENT_BYTES, "generation request")
    _check_status(status)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise InvalidInput(f"seed must be a non-negative 64-bit integer, not {seed!r}")
    if canvas_version is not None:
        if canvas_id is None:
            raise InvalidInput("canvas_version needs a canvas_id")
        if not isinstance(canvas_version, int) or isinstance(canvas_version, bool) or canvas_version < 1:
            raise InvalidInput(f"canvas_version must be a positive integer, not {canvas_version!r}")
    fields = {
        "model_id": _text(model_id, "model_id", 200),
        "model_name": _text(model_name, "model_name", 200),
        "model_hash": _text(model_hash, "model_hash", 64),
        "mode": _text(mode, "mode", 16),
    }
    with db.write() as s:
        if canvas_id is not None:
            _require(s, Canvas, canvas_id, "canvas")
        if board_id is not None:
            _require(s, Board, board_id, "board")
        gen = Generation(
            request=req, canvas_id=canvas_id, canvas_version=canvas_version, board_id=board_id,
            seed=seed, status=status, **fields,
        )  # fmt: skip
        s.add(gen)
        s.flush()
        return _records(s, [gen])[0]


def update_generation(db: Database, generation_id: str, **fields: Any) -> GenerationRecord:
    """Change any of: status, started_at, finished_at, timings, error_type, error_message."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}; only {', '.join(sorted(UPDATABLE))}")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "status":
            values[key] = _check_status(value)
        elif key in ("started_at", "finished_at"):
            values[key] = _time(value, key)
        elif key == "timings":
            values[key] = None if value is None else validate_document(value, 1024 * 1024, "timings")
        elif key == "error_type":
            values[key] = _text(value, key, 100)
        else:
            values[key] = _text(value, key, None)
    with db.write() as s:
        gen = _get(s, generation_id)
        for key, value in values.items():
            setattr(gen, key, value)
        s.flush()
        return _records(s, [gen])[0]


def get_generation(db: Database, generation_id: str) -> GenerationRecord:
    with db.read() as s:
        return _records(s, [_get(s, generation_id)])[0]


def list_generations(
    db: Database,
    board_id: str | None = None,
    canvas_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    hide_lane: int | None = None,
) -> GenerationPage:
    """Generations newest first, optionally only one board's and/or one canvas's. `hide_lane`: a queue
    priority whose generations are left out unless one of their images was kept (live painting's)."""
    limit = _limit(limit)
    with db.read() as s:
        stmt = select(Generation)
        if hide_lane is not None:
            stmt = stmt.where(~in_hidden_lane(hide_lane))
        if board_id is not None:
            _require(s, Board, board_id, "board")
            stmt = stmt.where(Generation.board_id == board_id)
        if canvas_id is not None:
            _require(s, Canvas, canvas_id, "canvas")
            stmt = stmt.where(Generation.canvas_id == canvas_id)
        return _page(s, stmt, limit, cursor)


def history_for_canvas(db: Database, canvas_id: str, limit: int = 50, cursor: str | None = None) -> GenerationPage:
    """The canvas's generations, newest first."""
    return list_generations(db, canvas_id=canvas_id, limit=limit, cursor=cursor)


def history_for_image(db: Database, image_id: str, limit: int = 50) -> ImageHistory:
    """The generation that made the image and, when it came from a canvas, up to `limit` of that
    canvas's other generations, newest first."""
    limit = _limit(limit)
    with db.read() as s:
        gen_id = s.execute(select(Image.generation_id).where(Image.id == image_id)).first()
        if gen_id is None:
            raise NotFound(f"no image with id {image_id!r}")
        gen = s.get(Generation, gen_id[0]) if gen_id[0] is not None else None
        if gen is None:
            return ImageHistory(image_id, None, [])
        others: list[Generation] = []
        if gen.canvas_id is not None:
            others = list(
                s.scalars(
                    select(Generation)
                    .where(Generation.canvas_id == gen.canvas_id, Generation.id != gen.id)
                    .order_by(Generation.created_at.desc(), Generation.id.desc())
                    .limit(limit)
                )
            )
        records = _records(s, [gen, *others])
        return ImageHistory(image_id, records[0], records[1:])
