"""Boards: named, nestable, orderable folders for images.

Every function takes the `Database`, runs in one transaction (except `delete_board`, see there) and
returns frozen records, never ORM objects. Unknown ids raise NotFound naming the id.
Sibling order is `position` (0, 1, 2, ... within one parent), ties broken by name.
Boards nest at most MAX_DEPTH levels (a top-level board is level 1): creating or moving a board
deeper is refused. A deeper chain from an older database still works everywhere (every walk of the
tree is a recursive CTE or an explicit loop, never Python recursion), and can be made shallower.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidInput, NotFound
from .models import NAME_MAX, Board, Image

if TYPE_CHECKING:
    from .assets import AssetStore
    from .session import Database

MAX_DEPTH = 100


@dataclass(frozen=True)
class BoardRecord:
    id: str
    name: str
    parent_id: str | None
    cover_image_id: str | None
    position: int
    archived: bool
    created_at: datetime
    updated_at: datetime
    image_count: int  # images directly on this board (not its sub-boards)


@dataclass(frozen=True)
class BoardNode:
    record: BoardRecord
    children: tuple[BoardNode, ...] = ()


@dataclass(frozen=True)
class BoardDeletion:
    board_ids: tuple[str, ...]  # the board and its sub-boards, all gone
    images_deleted: int  # rows and files removed (include_images=True)
    images_uncategorised: int  # images left with no board (include_images=False)


def validate_name(name: object, what: str = "name") -> str:
    """Stripped, 1..NAME_MAX characters; else InvalidInput."""
    if not isinstance(name, str):
        raise InvalidInput(f"{what} must be a string")
    cleaned = name.strip()
    if not cleaned:
        raise InvalidInput(f"{what} must not be empty")
    if len(cleaned) > NAME_MAX:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long; the limit is {NAME_MAX}")
    return cleaned


# --- queries -----------------------------------------------------------------------------------


def _get(s: Session, board_id: str) -> Board:
    board = s.get(Board, board_id) if isinstance(board_id, str) else None
    if board is None:
        raise NotFound(f"no board with id {board_id!r}")
    return board


def _counts(s: Session, ids: Iterable[str] | None = None) -> dict[str, int]:
    stmt = select(Image.board_id, func.count()).where(Image.board_id.is_not(None)).group_by(Image.board_id)
    if ids is not None:
        stmt = stmt.where(Image.board_id.in_(list(ids)))
    return dict(s.execute(stmt).all())


def _record(board: Board, count: int) -> BoardRecord:
    return BoardRecord(
        id=board.id,
        name=board.name,
        parent_id=board.parent_id,
        cover_image_id=board.cover_image_id,
        position=board.position,
        archived=bool(board.archived),
        created_at=board.created_at,
        updated_at=board.updated_at,
        image_count=count,
    )


def _one(s: Session, board: Board) -> BoardRecord:
    s.flush()
    return _record(board, _counts(s, [board.id]).get(board.id, 0))


def _subtree(s: Session, board_id: str) -> list[str]:
    """The board then its descendants, shallowest first (UNION, not UNION ALL: a cycle cannot loop)."""
    tree = select(Board.id, literal(0).label("depth")).where(Board.id == board_id).cte("tree", recursive=True)
    tree = tree.union(select(Board.id, tree.c.depth + 1).where(Board.parent_id == tree.c.id))
    rows = s.execute(
        select(tree.c.id, func.min(tree.c.depth).label("d"))
        .join(Board, Board.id == tree.c.id)
        .group_by(tree.c.id, Board.position, Board.name, Board.id)  # one board a tree id: PostgreSQL wants them named
        .order_by("d", Board.position, Board.name, Board.id)
    ).all()
    return [row[0] for row in rows]


def _level(s: Session, board_id: str) -> int:
    """How deep `board_id` is: 1 at the top level (its ancestors plus one). UNION over (id, parent) rows
    without a counter, so even a corrupt cycle ends."""
    up = select(Board.id, Board.parent_id).where(Board.id == board_id).cte("ancestors", recursive=True)
    up = up.union(select(Board.id, Board.parent_id).join(up, Board.id == up.c.parent_id))
    return s.scalar(select(func.count()).select_from(up)) or 0


def _height(s: Session, board_id: str) -> int:
    """Levels in the board's subtree: 1 for a board without sub-boards."""
    tree = select(Board.id, literal(1).label("level")).where(Board.id == board_id).cte("height", recursive=True)
    tree = tree.union(select(Board.id, tree.c.level + 1).where(Board.parent_id == tree.c.id))
    return s.scalar(select(func.max(tree.c.level))) or 0


def _too_deep(levels: int) -> InvalidInput:
    return InvalidInput(f"boards nest at most {MAX_DEPTH} levels deep; this would make {levels} levels")


def _siblings(s: Session, parent_id: str | None, exclude: str | None = None) -> list[Board]:
    stmt = select(Board).where(Board.parent_id == parent_id).order_by(Board.position, Board.name, Board.id)
    if exclude is not None:
        stmt = stmt.where(Board.id != exclude)
    return list(s.scalars(stmt))


def _next_position(s: Session, parent_id: str | None) -> int:
    top = s.scalar(select(func.max(Board.position)).where(Board.parent_id == parent_id))
    return 0 if top is None else top + 1


# --- public API --------------------------------------------------------------------------------


def create_board(db: Database, name: str, parent_id: str | None = None) -> BoardRecord:
    """A new board at the end of its siblings."""
    cleaned = validate_name(name)
    with db.write() as s:
        if parent_id is not None:
            _get(s, parent_id)
            level = _level(s, parent_id) + 1
            if level > MAX_DEPTH:
                raise _too_deep(level)
        board = Board(name=cleaned, parent_id=parent_id, position=_next_position(s, parent_id), archived=False)
        s.add(board)
        s.flush()
        return _record(board, 0)


def get_board(db: Database, board_id: str) -> BoardRecord:
    with db.read() as s:
        return _one(s, _get(s, board_id))


def rename_board(db: Database, board_id: str, name: str) -> BoardRecord:
    cleaned = validate_name(name)
    with db.write() as s:
        board = _get(s, board_id)
        board.name = cleaned
        return _one(s, board)


def move_board(db: Database, board_id: str, new_parent_id: str | None, position: int | None = None) -> BoardRecord:
    """Nest under `new_parent_id` (None: top level) at `position` among its new siblings (None: last).

    Moving a board under itself or one of its descendants raises Conflict and changes nothing; a move
    that nests its subtree deeper than MAX_DEPTH levels (and deeper than it was) raises InvalidInput.
    """
    if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
        raise InvalidInput(f"position must be a non-negative integer, not {position!r}")
    with db.write() as s:
        board = _get(s, board_id)
        if new_parent_id is not None:
            _get(s, new_parent_id)
            if new_parent_id in _subtree(s, board_id):
                raise Conflict(f"cannot move board {board_id!r} under itself or one of its sub-boards")
            if new_parent_id != board.parent_id:
                height = _height(s, board_id)
                deepest = _level(s, new_parent_id) + height
                if deepest > MAX_DEPTH and deepest > _level(s, board_id) - 1 + height:
                    raise _too_deep(deepest)
        old_parent_id = board.parent_id
        siblings = _siblings(s, new_parent_id, exclude=board_id)
        index = len(siblings) if position is None else min(position, len(siblings))
        siblings.insert(index, board)
        board.parent_id = new_parent_id
        for i, b in enumerate(siblings):
            if b.position != i:
                b.position = i
        if old_parent_id != new_parent_id:  # close the gap it left
            for i, b in enumerate(_siblings(s, old_parent_id, exclude=board_id)):
                if b.position != i:
                    b.position = i
        return _one(s, board)


def reorder_boards(db: Database, parent_id: str | None, ordered_ids: Sequence[str]) -> list[BoardRecord]:
    """Set the order of `parent_id`'s children; `ordered_ids` must be exactly those children, once each."""
    ordered = list(ordered_ids)
    with db.write() as s:
        if parent_id is not None:
            _get(s, parent_id)
        children = {b.id: b for b in _siblings(s, parent_id)}
        if len(set(ordered)) != len(ordered) or set(ordered) != set(children):
            missing = sorted(set(children) - set(ordered))
            extra = sorted(set(ordered) - set(children))
            raise InvalidInput(
                "ordered_ids must list each child of the parent exactly once"
                + (f"; missing {missing}" if missing else "")
                + (f"; not children {extra}" if extra else "")
                + ("; duplicates" if len(set(ordered)) != len(ordered) else "")
            )
        for i, board_id in enumerate(ordered):
            if children[board_id].position != i:
                children[board_id].position = i
        s.flush()
        counts = _counts(s, ordered)
        return [_record(children[i], counts.get(i, 0)) for i in ordered]


def set_archived(db: Database, board_id: str, archived: bool) -> BoardRecord:
    with db.write() as s:
        board = _get(s, board_id)
        board.archived = bool(archived)
        return _one(s, board)


def set_cover(db: Database, board_id: str, image_id: str | None) -> BoardRecord:
    """The board's cover image (any existing image), or None to clear it."""
    with db.write() as s:
        board = _get(s, board_id)
        if image_id is not None and s.scalar(select(Image.seq).where(Image.id == image_id)) is None:
            raise NotFound(f"no image with id {image_id!r}")
        board.cover_image_id = image_id
        return _one(s, board)


def board_with_descendants(db: Database, board_id: str) -> list[str]:
    """The board's id then its descendants' ids, shallowest first."""
    with db.read() as s:
        _get(s, board_id)
        return _subtree(s, board_id)


def board_tree(db: Database, include_archived: bool = True) -> list[BoardNode]:
    """All boards as a forest, each level ordered by position then name.

    Without `include_archived`, an archived board is left out together with its sub-boards.
    """
    with db.read() as s:
        boards = list(s.scalars(select(Board).order_by(Board.position, Board.name, Board.id)))
        counts = _counts(s)
    by_parent: dict[str | None, list[Board]] = {}
    for b in boards:
        by_parent.setdefault(b.parent_id, []).append(b)

    def kept(parent_id: str | None) -> list[Board]:
        return [b for b in by_parent.get(parent_id, []) if include_archived or not b.archived]

    # An explicit stack, not recursion: an old database may hold chains thousands deep.
    order: list[Board] = []  # pre-order: every board after its parent
    seen: set[str] = set()
    stack = list(reversed(kept(None)))
    while stack:
        b = stack.pop()
        if b.id in seen:
            continue
        seen.add(b.id)
        order.append(b)
        stack.extend(reversed(kept(b.id)))
    built: dict[str, BoardNode] = {}
    for b in reversed(order):  # children before parents
        children = tuple(built[c.id] for c in kept(b.id) if c.id in built)
        built[b.id] = BoardNode(_record(b, counts.get(b.id, 0)), children)
    return [built[b.id] for b in kept(None) if b.id in built]


def delete_board(db: Database, store: AssetStore, board_id: str, include_images: bool) -> BoardDeletion:
    """Delete a board and all its sub-boards.

    include_images=True: every image on the board or a sub-board is deleted (rows, then files, through
    `db.images.delete_images`, its own transaction), then the boards go in a second transaction, which
    first checks no image arrived on them meanwhile (if one did, it is deleted too and the check repeats).
    include_images=False: one transaction; the images stay, with no board (uncategorised).
    """
    with db.read() as s:
        _get(s, board_id)
    deleted = 0
    for _ in range(10):
        if include_images:
            with db.read() as s:
                ids = _subtree(s, board_id)
                image_ids = list(s.scalars(select(Image.id).where(Image.board_id.in_(ids))))
            if image_ids:
                from .images import delete_images

                try:
                    deleted += delete_images(db, store, image_ids)
                except NotFound:
                    continue  # one was deleted meanwhile: look again
        with db.write() as s:
            _get(s, board_id)
            ids = _subtree(s, board_id)
            if include_images and s.scalar(select(Image.seq).where(Image.board_id.in_(ids)).limit(1)) is not None:
                continue  # images were added while we deleted: delete those too
            moved = s.execute(update(Image).where(Image.board_id.in_(ids)).values(board_id=None)).rowcount
            # Every id is deleted explicitly. Unlink them from their parents first: otherwise each row's
            # ON DELETE CASCADE runs as a nested trigger, and SQLite stops a chain past 1000 levels
            # ("too many levels of trigger recursion").
            s.execute(update(Board).where(Board.id.in_(ids)).values(parent_id=None))
            s.execute(delete(Board).where(Board.id.in_(ids)))
            return BoardDeletion(tuple(ids), deleted, moved or 0)
    raise Conflict(f"board {board_id!r} kept receiving images while it was being deleted; try again")
