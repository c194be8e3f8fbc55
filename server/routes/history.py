from __future__ import annotations

from flask import Blueprint

from db import history

from .. import live
from ..api import API_PREFIX, route
from ..schemas import GenerationOut, GenerationPageOut, HistoryQuery
from ..services import services

bp = Blueprint("history", __name__, url_prefix=API_PREFIX + "/history")


def generation_out(record: history.GenerationRecord) -> GenerationOut:
    return GenerationOut.model_validate(record, from_attributes=True)


@route(bp, "", "GET", summary="Generations, newest first, by board or canvas", query=HistoryQuery, response=GenerationPageOut)
def list_generations(query: HistoryQuery):
    page = history.list_generations(
        services().db, board_id=query.board_id, canvas_id=query.canvas_id, limit=query.limit, cursor=query.cursor,
        hide_lane=live.LIVE_PRIORITY,  # live renders are not history until kept
    )
    return GenerationPageOut(items=[generation_out(g) for g in page.items], next_cursor=page.next_cursor)


@route(bp, "/<generation_id>", "GET", summary="One generation", response=GenerationOut)
def get(generation_id: str):
    return generation_out(history.get_generation(services().db, generation_id))
