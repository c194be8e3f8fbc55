"""Saved canvas documents and their versions.

Each save adds a version (numbered 1, 2, 3, ... per canvas, never reused). Autosaves beyond a cap
(default 20 per canvas) are pruned oldest first; named saves (autosave=False) are kept until the canvas
is deleted. A document is a JSON object (bbox, layers referencing image asset ids, params); pixels are
never inline, so it is capped at 5 MB of JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .boards import validate_name
from .errors import Conflict, InvalidInput, NotFound
from .models import NAME_MAX, Canvas, CanvasVersion

if TYPE_CHECKING:
    from .session import Database

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
AUTOSAVE_CAP = 20
CANVAS_ID_LENGTH = 32  # uuid4 hex, as models.new_id makes them; a browser may make its own


class VersionConflict(Conflict):
    """The canvas moved on since the version a save was based on (another browser saved)."""

    def __init__(self, canvas_id: str, base_version: int, current_version: int):
        super().__init__(
            f"canvas {canvas_id!r} is at version {current_version}, not {base_version}:"
            " it was saved elsewhere meanwhile"
        )
        self.current_version = current_version


@dataclass(frozen=True)
class CanvasRecord:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    current_version: int  # the newest version's number
    version_count: int  # versions kept (after pruning)
    kept_copy: CanvasRecord | None = None  # a save's conflict: the other browser's version, kept


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
    base_version: int | None = None,
    create: bool = False,
    writer: str | None = None,
) -> CanvasRecord:
    """Save `document` as a new version: of a new canvas when `canvas_id` is None, else of that canvas.

    `name` is required for a new canvas; for an existing one it renames it (None keeps the name).
    `create`: a `canvas_id` that names no canvas yet creates one with that id (a browser names its new
    canvas itself, so a save sent as the page closes, whose reply nobody reads, still lands on it).
    `base_version`: the version the document was made from; when the canvas has moved on since
    (0: it exists already) by another `writer` (the saving browser's id, stamped as the document's
    `ui.writer`), that newer version is kept whole as a new canvas (the record's `kept_copy`) and this
    one saved; without a writer, VersionConflict (409) and nothing is written.
    """
    if autosave_cap < 1:
        raise InvalidInput("autosave_cap must be at least 1")
    doc = validate_document(document)
    with db.write() as s:
        existing = s.get(Canvas, canvas_id) if isinstance(canvas_id, str) else None
        if existing is None and (canvas_id is None or create):
            if create and not _valid_new_id(canvas_id):
                raise InvalidInput(f"a new canvas id must be {CANVAS_ID_LENGTH} lowercase hex digits")
            canvas = Canvas(name=validate_name(name, "canvas name"), current_version=0)
            if canvas_id is not None:
                canvas.id = canvas_id
            s.add(canvas)
            s.flush()
        else:
            canvas = existing or _get(s, canvas_id)  # type: ignore[arg-type]
            if name is not None:
                canvas.name = validate_name(name, "canvas name")
        kept: CanvasRecord | None = None
        if base_version is not None and base_version != canvas.current_version:
            latest = _latest_document(s, canvas.id)
            if writer is None or latest is None:
                raise VersionConflict(canvas.id, base_version, canvas.current_version)
            if _writer_of(latest) != writer:
                # another browser saved since: newest save wins the canvas, the other version is kept whole
                copy = Canvas(name=_copy_name(canvas.name), current_version=1)
                s.add(copy)
                s.flush()
                s.add(CanvasVersion(canvas_id=copy.id, version=1, autosave=False, document=latest))
                kept = _record(s, copy, 1)
            # else: this browser's own save, whose reply it never read (sent as its page closed)
        if writer is not None:
            ui = doc.get("ui") if isinstance(doc.get("ui"), dict) else {}
            doc["ui"] = {**ui, "writer": writer}
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
        record = _record(s, canvas)
        return replace(record, kept_copy=kept) if kept else record


def _latest_document(s: Session, canvas_id: str) -> dict[str, Any] | None:
    stmt = select(CanvasVersion.document).where(CanvasVersion.canvas_id == canvas_id)
    return s.scalar(stmt.order_by(CanvasVersion.version.desc()).limit(1))


def _writer_of(document: dict[str, Any]) -> str | None:
    ui = document.get("ui")
    writer = ui.get("writer") if isinstance(ui, dict) else None
    return writer if isinstance(writer, str) else None


def _copy_name(name: str) -> str:
    suffix = " (another browser's version)"
    return name[: NAME_MAX - len(suffix)] + suffix


def _valid_new_id(canvas_id: object) -> bool:
    return (
        isinstance(canvas_id, str)
        and len(canvas_id) == CANVAS_ID_LENGTH
        and all(c in "0123456789abcdef" for c in canvas_id)
    )


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

