"""The image gallery: add, list (keyset pages, filters, full-text search), move, star, delete.

Each function is one transaction and returns plain frozen dataclasses, never ORM objects.

Files and rows: `add_image` writes the file (atomically) and its thumbnail before it inserts the
row, and removes them again if the insert fails, so a committed row always has a whole file.
`delete_images` commits the row deletion first, then removes the files. A crash between the two
steps leaves a file without a row, which `db.doctor` finds and repairs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from .assets import MAX_BYTES, MAX_PIXELS, AssetStore, ImageInfo, StoredFile
from .errors import Conflict, InvalidInput, NotFound
from .models import IMAGE_CATEGORIES, IMAGE_ORIGINS, NAME_MAX, UNLISTED_CATEGORIES, Board, Generation, Image, new_id, utcnow
from .png_metadata import (
    METADATA_KEY,
    finite_json,
    loads_json,
    normalise,
    read_png_text,
    recall_extras,
    recall_parameters,
    recall_source,
)
from .dialect_sql import unindexed, utc_day
from .search_index import count_matches, fts5_query, matching_seqs, search_terms
from .search_text import region_prompts_text
from .session import Database

MAX_LIMIT = 500
ORDERS = ("newest", "oldest")
UNCATEGORISED = "none"
_CHUNK = 500  # ids per IN (...) list
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ORIGINAL_MAX = 64 * 1024  # keep another tool's raw metadata text up to this size


@dataclass(frozen=True)
class ImageRecord:
    id: str
    file_name: str
    board_id: str | None
    width: int
    height: int
    file_size: int
    content_hash: str
    origin: str
    category: str
    starred: bool
    created_at: datetime
    prompt: str
    negative_prompt: str
    model_name: str | None
    metadata: dict[str, Any]
    generation_id: str | None


@dataclass(frozen=True)
class Page:
    items: list[ImageRecord]
    next_cursor: str | None  # None on the last page


def _record(row: Image) -> ImageRecord:
    return ImageRecord(
        id=row.id,
        file_name=row.file_name,
        board_id=row.board_id,
        width=row.width,
        height=row.height,
        file_size=row.file_size,
        content_hash=row.content_hash,
        origin=row.origin,
        category=row.category,
        starred=bool(row.starred),
        created_at=row.created_at,
        prompt=row.prompt or "",
        negative_prompt=row.negative_prompt or "",
        model_name=row.model_name,
        metadata=dict(row.meta or {}),
        generation_id=row.generation_id,
    )


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_id(value: Any, what: str = "image") -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidInput(f"invalid {what} id {value!r}")
    return value


def _check_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise InvalidInput("ids must be a list of image ids, not a string")
    unique = list(dict.fromkeys(_check_id(i) for i in ids))
    return unique


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _naive_utc(value: datetime | date, what: str) -> datetime:
    if isinstance(value, datetime):
        if not value.tzinfo:
            return value
        try:
            return value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:59-14:00 is after year 9999 in UTC
            raise InvalidInput(f"{what} {value.isoformat()} is outside the years 1 to 9999 once converted to UTC") from None
    if isinstance(value, date):
        return datetime.combine(value, time())
    raise InvalidInput(f"{what} must be a date or datetime, not {type(value).__name__}")


def _require_all(s: Session, ids: list[str]) -> dict[str, str]:
    """{id: file name} for `ids`, or NotFound naming the first missing id (checked before any change)."""
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        found.update(s.execute(select(Image.id, Image.file_name).where(Image.id.in_(chunk))).tuples().all())
    for image_id in ids:
        if image_id not in found:
            raise NotFound(f"image {image_id!r} not found")
    return found


def _require_board(s: Session, board_id: str) -> None:
    if s.scalar(select(Board.id).where(Board.id == board_id)) is None:
        raise NotFound(f"board {board_id!r} not found")


# ---------------------------------------------------------------------------------------------
# metadata


def metadata_from_chunks(chunks: dict[str, str]) -> dict[str, Any]:
    """What an uploaded PNG tells about itself: our own JSON as is; otherwise the normalised
    parameters of InvokeAI or A1111 metadata with `source` and the `original` text."""
    own = chunks.get(METADATA_KEY)
    if own:
        value = loads_json(own)  # NaN and infinities as None; unreadable or too deeply nested: None
        if isinstance(value, dict):
            return value
    params = recall_parameters(chunks)
    if not params:
        return {}
    original = {k: chunks[k] for k in ("invokeai_metadata", "sd-metadata", "parameters") if k in chunks}
    meta: dict[str, Any] = {**params, "source": recall_source(chunks)}
    if sum(len(v) for v in original.values()) <= _ORIGINAL_MAX:
        meta["original"] = original
    return meta


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"metadata is not JSON: {exc}") from exc
    return metadata


# ---------------------------------------------------------------------------------------------
# add


def image_row(
    image_id: str,
    stored: StoredFile,
    info: ImageInfo,
    metadata: dict[str, Any],
    *,
    origin: str,
    category: str = "general",
    board_id: str | None = None,
    generation_id: str | None = None,
    created_at: datetime,
    region_prompts: str = "",
) -> Image:
    """A new Image row for a stored file; prompt, negative prompt and model name come from the metadata,
    `region_prompts` from its generation's request (db.search_text.region_prompts_text)."""
    params = normalise(metadata)
    model_name = params.get("model_name") or None
    return Image(
        id=image_id,
        file_name=stored.file_name,
        board_id=board_id,
        width=info.width,
        height=info.height,
        file_size=stored.size,
        content_hash=stored.sha256,
        origin=origin,
        category=category,
        starred=False,
        created_at=created_at,
        prompt=params.get("prompt", ""),
        negative_prompt=params.get("negative_prompt", ""),
        model_name=model_name[:NAME_MAX] if model_name else None,
        region_prompts=region_prompts,
        meta=metadata,
        generation_id=generation_id,
    )


def add_image(
    db: Database,
    store: AssetStore,
    data: bytes,
    *,
    origin: str = "uploaded",
    category: str = "general",
    board_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    generation_id: str | None = None,
    created_at: datetime | None = None,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    missing_board: str = "raise",
    thumbnail: bool = True,
) -> ImageRecord:
    """Check the bytes, write the file and thumbnail, then insert the row (files removed if it fails).
    `thumbnail=False` leaves the thumbnail to the caller (the queue's saver writes it after the job's
    event; the thumbnail route makes a missing one on request).

    Without `metadata`, a PNG's text chunks provide it (ours, InvokeAI's or A1111's), so an image
    made elsewhere keeps its prompt. `max_bytes` and `max_pixels` are the upload limits.
    `missing_board`: "raise" (NotFound when `board_id` names no board) or "uncategorised" (the image is
    kept with no board: a generated image whose board was deleted while its job ran); the returned
    record's `board_id` tells which happened.
    """
    if missing_board not in ("raise", "uncategorised"):
        raise InvalidInput(f"invalid missing_board {missing_board!r}: use 'raise' or 'uncategorised'")
    if origin not in IMAGE_ORIGINS:
        raise InvalidInput(f"invalid origin {origin!r}: choose one of {', '.join(IMAGE_ORIGINS)}")
    if category not in IMAGE_CATEGORIES:
        raise InvalidInput(f"invalid category {category!r}: choose one of {', '.join(IMAGE_CATEGORIES)}")
    if metadata is not None:
        _check_metadata(metadata)
    if board_id is not None:
        _check_id(board_id, "board")
    if generation_id is not None:
        _check_id(generation_id, "generation")
    stamp = _naive_utc(created_at, "created_at") if created_at is not None else None

    info = store.inspect_upload(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if board_id is not None and missing_board == "raise":  # fail fast, before writing anything; checked again below
        with db.read() as s:
            _require_board(s, board_id)
    if metadata is None:
        metadata = metadata_from_chunks(read_png_text(data)) if info.format == "png" else {}

    image_id = new_id()
    stored = store.write(image_id, data, info.ext)
    try:
        if thumbnail:
            store.write_thumbnail(image_id, data)
        with db.write() as s:
            if board_id is not None:
                if missing_board == "raise":
                    _require_board(s, board_id)
                elif s.scalar(select(Board.id).where(Board.id == board_id)) is None:
                    board_id = None
            generation = s.get(Generation, generation_id) if generation_id is not None else None
            if generation_id is not None and generation is None:
                raise NotFound(f"generation {generation_id!r} not found")
            row = image_row(
                image_id,
                stored,
                info,
                metadata,
                origin=origin,
                category=category,
                board_id=board_id,
                generation_id=generation_id,
                created_at=stamp or utcnow(),
                region_prompts=region_prompts_text(generation.request) if generation is not None else "",
            )
            s.add(row)
            s.flush()
            record = _record(row)
    except BaseException:
        store.delete(stored.file_name)
        raise
    return record


# ---------------------------------------------------------------------------------------------
# single image


def get_image(db: Database, image_id: str) -> ImageRecord:
    _check_id(image_id)
    with db.read() as s:
        row = s.scalar(select(Image).where(Image.id == image_id))
        if row is None:
            raise NotFound(f"image {image_id!r} not found")
        return _record(row)


def get_metadata(db: Database, image_id: str) -> dict[str, Any]:
    """The stored metadata; NaN or infinities a row stored before they were refused read as None."""
    return finite_json(get_image(db, image_id).metadata) or {}


def recall(db: Database, image_id: str) -> dict[str, Any]:
    """The image's generation parameters under our names (prompt, steps, scheduler, seed, ...), and what
    rebuilds its layers: LoRAs, and regions and controls with their layer assets (`available`: the asset
    still exists; see png_metadata.recall_extras)."""
    meta = get_metadata(db, image_id)
    out = {**normalise(meta), **recall_extras(meta)}
    items = [*out.get("regions", ()), *out.get("controls", ()), *out.get("references", ())]
    asset_ids = {i["image_id"] for i in items if i.get("image_id")}
    if asset_ids:
        with db.read() as s:
            found = set(s.scalars(select(Image.id).where(Image.id.in_(sorted(asset_ids)))))
    else:
        found = set()
    for item in items:
        item["available"] = item.get("image_id") in found
    return out


# ---------------------------------------------------------------------------------------------
# bulk changes


def move_images(db: Database, ids: Iterable[str], board_id: str | None) -> int:
    """Move images to a board (None: uncategorised). All ids are checked first; returns the count."""
    ids = _check_ids(ids)
    if board_id is not None:
        _check_id(board_id, "board")
    with db.write() as s:
        if board_id is not None:
            _require_board(s, board_id)
        _require_all(s, ids)
        for chunk in _chunks(ids):
            s.execute(update(Image).where(Image.id.in_(chunk)).values(board_id=board_id))
    return len(ids)


def set_starred(db: Database, ids: Iterable[str], starred: bool) -> int:
    ids = _check_ids(ids)
    if not isinstance(starred, bool):
        raise InvalidInput("starred must be true or false")
    with db.write() as s:
        _require_all(s, ids)
        for chunk in _chunks(ids):
            s.execute(update(Image).where(Image.id.in_(chunk)).values(starred=starred))
    return len(ids)


def delete_images(db: Database, store: AssetStore, ids: Iterable[str]) -> int:
    """Delete rows (and board covers pointing at them) in one committed transaction, then the files."""
    ids = _check_ids(ids)
    with db.write() as s:
        file_names = list(_require_all(s, ids).values())
        for chunk in _chunks(ids):
            s.execute(update(Board).where(Board.cover_image_id.in_(chunk)).values(cover_image_id=None))
            s.execute(delete(Image).where(Image.id.in_(chunk)))
    for file_name in file_names:
        try:
            store.delete(file_name)
        except OSError:
            pass  # the row is gone; the doctor finds the file (and re-imports it rather than lose it)
    return len(ids)


LIVE = "live"


def keep_live(db: Database, image_id: str, board_id: str | None = None) -> ImageRecord:
    """A live render kept: it becomes a gallery image ("general"), filed in `board_id` (None: uncategorised).
    Keeping one already kept changes nothing (a double click); other canvas assets are refused (Conflict)."""
    _check_id(image_id)
    if board_id is not None:
        _check_id(board_id, "board")
    with db.write() as s:
        row = s.scalar(select(Image).where(Image.id == image_id).with_for_update())
        if row is None:
            raise NotFound(f"image {image_id!r} not found")
        if row.category == LIVE:
            if board_id is not None:
                _require_board(s, board_id)
            row.category, row.board_id = "general", board_id
        elif row.category != "general" or row.origin != "generated":
            raise Conflict(f"image {image_id!r} is not a live render (it is a {row.category} image)")
        s.flush()
        return _record(row)


def prune_live(db: Database, store: AssetStore, retain: int, protect: Iterable[str] = ()) -> list[str]:
    """Delete the live renders but the newest `retain` (and those in `protect`): rows in one transaction, then
    their files. Returns the ids deleted."""
    protect = set(protect)
    with db.write() as s:
        rows = s.execute(  # locked: a render kept meanwhile (keep_live) is not one of them, nor its file deleted
            select(Image.id, Image.file_name).where(Image.category == LIVE).order_by(Image.seq.desc()).with_for_update()
        ).all()
        doomed = [(i, f) for i, f in rows[retain:] if i not in protect]
        for chunk in _chunks([i for i, _ in doomed]):
            s.execute(update(Board).where(Board.cover_image_id.in_(chunk)).values(cover_image_id=None))
            s.execute(delete(Image).where(Image.id.in_(chunk), Image.category == LIVE))
    for _, file_name in doomed:
        try:
            store.delete(file_name)
        except OSError:
            pass  # the row is gone; the doctor finds the file
    return [i for i, _ in doomed]


# ---------------------------------------------------------------------------------------------
# listing


def _encode_cursor(row: ImageRecord, order: str) -> str:
    payload = {"t": row.created_at.isoformat(), "i": row.id, "o": order}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, order: str) -> tuple[datetime, str]:
    try:
        if not isinstance(cursor, str) or len(cursor) > 512:
            raise ValueError
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        stamp, image_id, cursor_order = payload["t"], payload["i"], payload["o"]
        if not (isinstance(stamp, str) and isinstance(image_id, str) and _ID_RE.fullmatch(image_id)):
            raise ValueError
        when = datetime.fromisoformat(stamp)
        if when.tzinfo is not None:
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid cursor") from None
    if cursor_order != order:
        raise InvalidInput(f"the cursor belongs to order {cursor_order!r}, not {order!r}")
    return when, image_id


def fts_query(search: str) -> str | None:
    """User text -> an FTS5 query: every word a quoted prefix token, all required.

    Quotes, `*`, `-`, `AND`/`OR`/`NOT`/`NEAR`, parentheses and column filters in the input are
    plain text here, never syntax. No words at all: None (no search filter). Only the first
    SEARCH_MAX_CHARS characters (the API's limit) and in them the first 32 words are read.
    """
    terms = search_terms(search)
    return fts5_query(terms) if terms else None


def _board_condition(board_id: str | None, include_sub_boards: bool) -> ColumnElement[bool] | None:
    if board_id is None:
        return None
    if board_id == UNCATEGORISED:
        return Image.board_id.is_(None)
    if not include_sub_boards:
        return Image.board_id == board_id
    tree = select(Board.id).where(Board.id == board_id).cte("board_tree", recursive=True)
    tree = tree.union(select(Board.id).where(Board.parent_id == tree.c.id))
    return Image.board_id.in_(select(tree.c.id))


@dataclass(frozen=True)
class _Filters:
    board_id: str | None = None
    include_sub_boards: bool = False
    starred: bool | None = None
    origin: str | None = None
    model_name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    terms: tuple[str, ...] | None = None  # the words of `search` (db/search_index.py)


def _check_filters(
    *,
    board_id: str | None = None,
    include_sub_boards: bool = False,
    starred: bool | None = None,
    origin: str | None = None,
    model_name: str | None = None,
    created_from: datetime | date | None = None,
    created_to: datetime | date | None = None,
    search: str | None = None,
) -> _Filters:
    if board_id is not None and board_id != UNCATEGORISED:
        _check_id(board_id, "board")
    if starred is not None and not isinstance(starred, bool):
        raise InvalidInput("starred must be true, false or absent")
    if origin is not None and origin not in IMAGE_ORIGINS:
        raise InvalidInput(f"invalid origin {origin!r}: choose one of {', '.join(IMAGE_ORIGINS)}")
    if model_name is not None and not isinstance(model_name, str):
        raise InvalidInput("model_name must be a string")
    if search is not None and not isinstance(search, str):
        raise InvalidInput("search must be a string")
    return _Filters(
        board_id=board_id,
        include_sub_boards=bool(include_sub_boards),
        starred=starred,
        origin=origin,
        model_name=model_name,
        created_from=_naive_utc(created_from, "created_from") if created_from is not None else None,
        created_to=_naive_utc(created_to, "created_to") if created_to is not None else None,
        terms=search_terms(search) if search is not None else None,
    )


def _conditions(f: _Filters, dialect: str, *, index_model: bool, index_fts: bool) -> list[ColumnElement[bool]]:
    """WHERE terms. starred and origin never use their one-column indexes: with two or three values
    they match too many rows to sort per page; walking the ordered index and skipping is cheaper."""
    conds: list[ColumnElement[bool]] = [unindexed(Image.category).not_in(UNLISTED_CATEGORIES)]  # live renders
    board = _board_condition(f.board_id, f.include_sub_boards)
    if board is not None:
        conds.append(board)
    if f.starred is not None:
        conds.append(unindexed(Image.starred) == f.starred)
    if f.origin is not None:
        conds.append(unindexed(Image.origin) == f.origin)
    if f.model_name is not None:
        conds.append((Image.model_name if index_model else unindexed(Image.model_name)) == f.model_name)
    if f.created_from is not None:
        conds.append(Image.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(Image.created_at < f.created_to)
    if f.terms is not None:
        conds.append((Image.seq if index_fts else unindexed(Image.seq)).in_(matching_seqs(dialect, f.terms)))
    return conds


def _plan(s: Session, f: _Filters, limit: int) -> tuple[bool, bool]:
    """Whether the model-name index / the full-text matches should drive the query.

    Two ways to get a page: collect the M rows that match and sort them (cost ~M), or walk the
    (created_at, id) index in order and skip non-matching rows (cost ~limit * N / M). The counts
    are cheap (an index-only count, an FTS count), so pick the smaller cost: few matches drive.
    """
    if f.model_name is None and f.terms is None:
        return False, False
    total = s.scalar(select(func.max(Image.seq))) or 0
    budget = limit * total

    def few(count_stmt: Any) -> bool:
        count = s.scalar(count_stmt) or 0
        return count * count <= budget

    index_model = f.model_name is not None and few(
        select(func.count()).select_from(Image).where(Image.model_name == f.model_name)
    )
    index_fts = f.terms is not None and few(count_matches(s.get_bind().dialect.name, f.terms))
    return index_model, index_fts


def _check_board_filter(s: Session, board_id: Any) -> None:
    if board_id is None or board_id == UNCATEGORISED:
        return
    _check_id(board_id, "board")
    _require_board(s, board_id)


def _list_statement(
    f: _Filters, dialect: str, *, order: str, limit: int, cursor: str | None, index_model: bool, index_fts: bool
) -> Select:
    conds = _conditions(f, dialect, index_model=index_model, index_fts=index_fts)
    key = tuple_(Image.created_at, Image.id)
    if cursor is not None:
        when, last_id = _decode_cursor(cursor, order)
        after = tuple_(bindparam("c_t", when, type_=Image.created_at.type), bindparam("c_id", last_id, type_=String()))
        conds.append(key < after if order == "newest" else key > after)
    stmt = select(Image).where(*conds)
    if order == "newest":
        stmt = stmt.order_by(Image.created_at.desc(), Image.id.desc())
    else:
        stmt = stmt.order_by(Image.created_at.asc(), Image.id.asc())
    return stmt.limit(limit + 1)


def _check_page(order: Any, limit: Any, cursor: Any) -> None:
    if order not in ORDERS:
        raise InvalidInput(f"invalid order {order!r}: choose newest or oldest")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    if cursor is not None:
        _decode_cursor(cursor, order)


def list_images(
    db: Database,
    *,
    board_id: str | None = None,
    include_sub_boards: bool = False,
    starred: bool | None = None,
    origin: str | None = None,
    model_name: str | None = None,
    created_from: datetime | date | None = None,
    created_to: datetime | date | None = None,
    search: str | None = None,
    order: str = "newest",
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """One page of images, newest (or oldest) first, keyset-paginated on (created_at, id).

    board_id: None (all), "none" (uncategorised) or a board id (with include_sub_boards, its whole
    subtree). created_from is inclusive, created_to exclusive (a date means its midnight, UTC).
    search: words matched as prefixes in prompt, negative prompt, model name and the region prompts (and
    region negative prompts) of the image's generation, all required.
    Pass the returned next_cursor to get the following page; it is None on the last page.
    """
    f = _check_filters(
        board_id=board_id,
        include_sub_boards=include_sub_boards,
        starred=starred,
        origin=origin,
        model_name=model_name,
        created_from=created_from,
        created_to=created_to,
        search=search,
    )
    _check_page(order, limit, cursor)
    with db.read() as s:
        _check_board_filter(s, board_id)
        index_model, index_fts = _plan(s, f, limit)
        stmt = _list_statement(f, s.get_bind().dialect.name, order=order, limit=limit, cursor=cursor, index_model=index_model, index_fts=index_fts)
        rows = [_record(r) for r in s.scalars(stmt)]
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, _encode_cursor(items[-1], order) if more else None)


def explain_list_images(
    db: Database, *, order: str = "newest", limit: int = 50, cursor: str | None = None, **filters: Any
) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN for the query `list_images` would run (diagnostics and tests)."""
    f = _check_filters(**filters)
    _check_page(order, limit, cursor)
    with db.read() as s:
        index_model, index_fts = _plan(s, f, limit)
        stmt = _list_statement(f, s.get_bind().dialect.name, order=order, limit=limit, cursor=cursor, index_model=index_model, index_fts=index_fts)
        sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
        return [row[-1] for row in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]


# ---------------------------------------------------------------------------------------------
# counts


def count_by_board(db: Database) -> dict[str | None, int]:
    """Images per board id (None: uncategorised); boards without images are absent."""
    with db.read() as s:
        rows = s.execute(
            select(Image.board_id, func.count()).where(Image.category.not_in(UNLISTED_CATEGORIES)).group_by(Image.board_id)
        )
        return {board: count for board, count in rows}


def images_by_date(db: Database, board_id: str | None = None) -> list[tuple[str, int]]:
    """(UTC day 'YYYY-MM-DD', image count), newest day first; board_id as in `list_images`."""
    day = utc_day(Image.created_at)
    stmt = select(day, func.count()).where(Image.category.not_in(UNLISTED_CATEGORIES)).group_by(day).order_by(day.desc())
    board = _board_condition(board_id, False)
    if board is not None:
        stmt = stmt.where(board)
    with db.read() as s:
        _check_board_filter(s, board_id)
        return [(d, n) for d, n in s.execute(stmt)]
