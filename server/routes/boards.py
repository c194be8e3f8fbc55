from __future__ import annotations

from flask import Blueprint, Response, current_app

from db import boards

from ..api import API_PREFIX, route
from ..events import BoardChanged
from ..schemas import (
    BoardCreateIn,
    BoardDeleteQuery,
    BoardDeletionOut,
    BoardNodeOut,
    BoardOut,
    BoardPatchIn,
    BoardReorderIn,
    BoardTreeQuery,
)
from ..services import services

bp = Blueprint("boards", __name__, url_prefix=API_PREFIX + "/boards")
ERRORS = (400, 401, 404, 409, 415, 422)


def _out(record: boards.BoardRecord) -> BoardOut:
    return BoardOut.model_validate(record, from_attributes=True)


def _tree_json(nodes: list[boards.BoardNode]) -> str:
    """The forest as BoardNodeOut JSON, written with an explicit stack: a chain of boards thousands deep
    (possible in an older database) would overflow the recursion of pydantic and of `json`."""

    def reversed_with_commas(items) -> list:
        stack: list = []
        for i, node in enumerate(items):
            if i:
                stack.append(",")
            stack.append(node)
        return stack[::-1]

    dumps = current_app.json.dumps
    out = ["["]
    stack: list = ["]", *reversed_with_commas(nodes)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        out.append('{"board":' + dumps(_out(item.record).model_dump(mode="json")) + ',"children":[')
        stack.append("]}")
        stack.extend(reversed_with_commas(item.children))
    return "".join(out)


def _changed(board_id: str | None, change: str) -> None:
    services().events.publish(BoardChanged(board_id, change))


@route(bp, "", "GET", summary="The board tree", query=BoardTreeQuery, response=list[BoardNodeOut])
def tree(query: BoardTreeQuery):
    forest = boards.board_tree(services().db, include_archived=query.include_archived)
    return Response(_tree_json(forest), status=200, mimetype="application/json")


@route(bp, "", "POST", summary="Create a board (nested when parent_id is given)", body=BoardCreateIn, response=BoardOut, status=201, errors=ERRORS)
def create(body: BoardCreateIn):
    record = boards.create_board(services().db, body.name, body.parent_id)
    _changed(record.id, "created")
    return _out(record)


@route(bp, "/<board_id>", "GET", summary="One board", response=BoardOut)
def get(board_id: str):
    return _out(boards.get_board(services().db, board_id))


@route(bp, "/<board_id>", "PATCH", summary="Rename, move (nest), reorder, archive or set the cover", body=BoardPatchIn, response=BoardOut, errors=ERRORS)
def patch(board_id: str, body: BoardPatchIn):
    db = services().db
    sent = body.model_fields_set
    record = boards.get_board(db, board_id)
    # Check everything that can fail on its own first, so a bad field changes nothing.
    if "name" in sent:
        boards.validate_name(body.name)
    if "cover_image_id" in sent and body.cover_image_id is not None:
        from db import images

        images.get_image(db, body.cover_image_id)
    if "parent_id" in sent or "position" in sent:
        parent = body.parent_id if "parent_id" in sent else record.parent_id
        record = boards.move_board(db, board_id, parent, body.position)
        _changed(board_id, "moved")
    if "name" in sent:
        record = boards.rename_board(db, board_id, body.name)
        _changed(board_id, "renamed")
    if "archived" in sent and body.archived is not None:
        record = boards.set_archived(db, board_id, body.archived)
        _changed(board_id, "archived")
    if "cover_image_id" in sent:
        record = boards.set_cover(db, board_id, body.cover_image_id)
        _changed(board_id, "cover")
    return _out(record)


@route(bp, "/reorder", "POST", summary="Order a parent's sub-boards", body=BoardReorderIn, response=list[BoardOut], errors=ERRORS)
def reorder(body: BoardReorderIn):
    records = boards.reorder_boards(services().db, body.parent_id, body.ordered_ids)
    _changed(body.parent_id, "moved")
    return [_out(r) for r in records]


@route(bp, "/<board_id>", "DELETE", summary="Delete a board and its sub-boards; ?include_images=true deletes their images too", query=BoardDeleteQuery, response=BoardDeletionOut, errors=ERRORS)
def delete(board_id: str, query: BoardDeleteQuery):
    s = services()
    result = boards.delete_board(s.db, s.store, board_id, include_images=query.include_images)
    _changed(board_id, "deleted")
    return BoardDeletionOut(board_ids=list(result.board_ids), images_deleted=result.images_deleted, images_uncategorised=result.images_uncategorised)
