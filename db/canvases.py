"""Saved canvas documents and their versions.

Each save adds a version (numbered 1, 2, 3, ... per canvas, never reused). Autosaves beyond a cap
(default 20 per canvas) are pruned oldest first; named saves (autosave=False) are kept until the canvas
is deleted. A document is a JSON object (bbox, layers referencing image asset ids, params); pixels are
never inline, so it is capped at 5 MB of JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .boards import validate_name
from .errors import InvalidInput, NotFound
from .models import Canvas, CanvasVersion

if TYPE_CHECKING:
    from .session import Database

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
AUTOSAVE_CAP = 20


@dataclass(frozen=True)
class CanvasRecord:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    current_version: int  # the newest version's number
    version_count: int  # versions kept (after pruning)


@dataclass(frozen=True)
class CanvasVersionRecord:
    canvas_id: str
    version: int
    autosave: bool
    created_at: datetime


def validate_document(
    document: object, max_bytes: int = MAX_DOCUMENT_BYTES, what: str = "canvas document"
) -> dict[str, Any]:
    """A JSON object (dict) with string keys, finite numbers, at most `max_bytes` of UTF-8 JSON."""
    if not isinstance(document, dict):
        raise InvalidInput(f"a {what} must be a JSON object, not {type(document).__name__}")
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"the {what} is not valid JSON: {exc}") from None
    if _non_str_keys(document):  # json.dumps would silently turn 1 into "1"
        raise InvalidInput(f"{what} keys must be strings")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInput(
            f"the {what} is {size} bytes of JSON; the limit is {max_bytes}"
            " (layers must reference image assets, not hold pixels)"
        )
    return json.loads(text)  # what will be stored and loaded back (tuples become lists)


def _non_str_keys(value: object) -> bool:
    if isinstance(value, dict):
        return any(not isinstance(k, str) or _non_str_keys(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_non_str_keys(v) for v in value)
    return False


def _get(s: Session, canvas_id: str) -> Canvas:
    canvas = s.get(Canvas, canvas_id) if isinstance(canvas_id, str) else None
    if canvas is None:
        raise NotFound(f"no canvas with id {canvas_id!r}")
    return canvas


def _record(s: Session, canvas: Canvas, count: int | None = None) -> CanvasRecord:
    s.flush()
    if count is None:
        count = s.scalar(select(func.count()).where(CanvasVersion.canvas_id == canvas.id)) or 0
    return CanvasRecord(canvas.id, canvas.name, canvas.created_at, canvas.updated_at, canvas.current_version, count)


def save_canvas(
    db: Database,
    name: str | None,
    document: dict[str, Any],
    canvas_id: str | None = None,
    autosave: bool = True,
    *,
    autosave_cap: int = AUTOSAVE_CAP,
) -> CanvasRecord:
    """Save `document` as a new version: of a new canvas when `canvas_id` is None, else of that canvas.

    `name` is required for a new canvas; for an existing one it renames it (None keeps the name).
    """
    if autosave_cap < 1:
        raise InvalidInput("autosave_cap must be at least 1")
    if canvas_id is None or name is not None:
        cleaned = validate_name(name, "canvas name")
    doc = validate_document(document)
    with db.write() as s:
        if canvas_id is None:
            canvas = Canvas(name=cleaned, current_version=0)
            s.add(canvas)
            s.flush()
        else:
            canvas = _get(s, canvas_id)
            if name is not None:
                canvas.name = cleaned
        canvas.current_version += 1
        s.add(CanvasVersion(canvas_id=canvas.id, version=canvas.current_version, autosave=bool(autosave), document=doc))
        s.flush()
        if autosave:
            keep = (
                select(CanvasVersion.id)
                .where(CanvasVersion.canvas_id == canvas.id, CanvasVersion.autosave.is_(True))
                .order_by(CanvasVersion.version.desc())
                .limit(autosave_cap)
            )
            s.execute(
                delete(CanvasVersion)
                .where(
                    CanvasVersion.canvas_id == canvas.id,
                    CanvasVersion.autosave.is_(True),
                    CanvasVersion.id.not_in(keep.scalar_subquery()),
                )
                .execution_options(synchronize_session=False)
            )
        return _record(s, canvas)


def load_canvas(db: Database, canvas_id: str, version: int | None = None) -> tuple[CanvasRecord, dict[str, Any]]:
    """The canvas and one version's document: the newest kept version when `version` is None."""
    with db.read() as s:
        canvas = _get(s, canvas_id)
        stmt = select(CanvasVersion.document).where(CanvasVersion.canvas_id == canvas_id)
        if version is None:
            stmt = stmt.order_by(CanvasVersion.version.desc()).limit(1)
        else:
            stmt = stmt.where(CanvasVersion.version == version)
        document = s.scalar(stmt)
        if document is None:
            what = "any version" if version is None else f"version {version}"
            raise NotFound(f"canvas {canvas_id!r} has no {what}")
        return _record(s, canvas), document


def list_canvases(db: Database) -> list[CanvasRecord]:
    """All canvases, most recently updated first."""
    with db.read() as s:
        counts = dict(s.execute(select(CanvasVersion.canvas_id, func.count()).group_by(CanvasVersion.canvas_id)).all())
        canvases = s.scalars(select(Canvas).order_by(Canvas.updated_at.desc(), Canvas.id)).all()
        return [_record(s, c, counts.get(c.id, 0)) for c in canvases]


def rename_canvas(db: Database, canvas_id: str, name: str) -> CanvasRecord:
    cleaned = validate_name(name, "canvas name")
    with db.write() as s:
        canvas = _get(s, canvas_id)
        canvas.name = cleaned
        return _record(s, canvas)


def delete_canvas(db: Database, canvas_id: str) -> None:
    """Delete the canvas and its versions; its generations stay, with no canvas."""
    with db.write() as s:
        _get(s, canvas_id)
        s.execute(delete(Canvas).where(Canvas.id == canvas_id).execution_options(synchronize_session=False))


def list_versions(db: Database, canvas_id: str) -> list[CanvasVersionRecord]:
    """The kept versions, newest first."""
    with db.read() as s:
        _get(s, canvas_id)
        rows = s.execute(
            select(CanvasVersion.version, CanvasVersion.autosave, CanvasVersion.created_at)
            .where(CanvasVersion.canvas_id == canvas_id)
            .order_by(CanvasVersion.version.desc())
        ).all()
        return [CanvasVersionRecord(canvas_id, v, bool(a), c) for v, a, c in rows]

