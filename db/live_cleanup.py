"""What a lane of the queue (live painting's: server/live.py) leaves behind, deleted: its finished
generations whose images are all gone, with their queue items, and the layer assets only their requests
named.

Rows go in one transaction; the files after it commits (a crash between leaves files without rows, which
`db.doctor` finds). Never deleted:
- a generation pending or in progress, one with any image (a render kept, or one of the newest kept by
  `images.prune_live`), nor the lane's newest generation, nor that of each lane key (a browser tab)
  active within KEY_IDLE of it (each tab's layers, as it last sent them);
- an asset that is a gallery image (category "general") or a render, is in a board or a board's cover,
  was made by a generation, or that any other generation's request or any saved canvas version (named
  or autosave) names. Requests and documents name layers by asset id: a 32-hex id is matched as text,
  in the rows made since the asset was (less CLOCK_SKEW): none older can name it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, delete, exists, select

from .assets import AssetStore
from .models import Board, CanvasVersion, Generation, Image, QueueAttempt, QueueItem
from .queue import FINISHED
from .session import Database

ASSET_CATEGORIES = ("layer", "mask", "control")  # what the web uploads for a layer's pixels
# how far apart the clocks of the processes that write rows may be (scale-out: several web processes)
CLOCK_SKEW = timedelta(hours=1)
# a lane key (a client) whose newest job is this much older than the lane's newest is gone (a closed tab):
# its layers are no longer kept for it
KEY_IDLE = timedelta(hours=1)


@dataclass(frozen=True)
class Purged:
    generation_ids: list[str]
    image_ids: list[str]  # the assets deleted


def purge_lane(db: Database, store: AssetStore, priority: int) -> Purged:
    """Delete the lane's finished generations without images (and their items), then the assets only they
    named: rows in one transaction, then the files (a file that will not go is left for the doctor)."""
    with db.write() as s:
        doomed = _doomed_generations(s, priority)
        ids = [g for g, _ in doomed]
        for chunk in _chunks(ids):
            items = select(QueueItem.id).where(QueueItem.generation_id.in_(chunk))
            s.execute(delete(QueueAttempt).where(QueueAttempt.item_id.in_(items)))
            s.execute(delete(QueueItem).where(QueueItem.generation_id.in_(chunk)))
            s.execute(delete(Generation).where(Generation.id.in_(chunk)))
        s.flush()
        assets = _unreferenced_assets(s, _named_assets(r for _, r in doomed))
        for chunk in _chunks(list(assets)):
            s.execute(delete(Image).where(Image.id.in_(chunk)))
    for file_name in assets.values():
        try:
            store.delete(file_name)
        except OSError:
            pass  # the row is gone; the doctor finds the file
    return Purged(ids, list(assets))


def _newest_per_key(s: Any, priority: int) -> set[str]:
    """The lane's newest generation, and the newest of each lane key (a client) active within KEY_IDLE of
    it: each client's layers as it last sent them. The lane holds a handful of rows (this purge keeps it so)."""
    rows = s.execute(
        select(Generation.id, Generation.created_at, QueueItem.lane_key)
        .join(QueueItem, QueueItem.generation_id == Generation.id)
        .where(QueueItem.priority == priority)
        .order_by(Generation.created_at.desc(), Generation.id.desc())
    ).all()
    if not rows:
        return set()
    cutoff = rows[0].created_at - KEY_IDLE
    newest: dict[str | None, str] = {}
    for gid, created, key in rows:
        if key not in newest and (not newest or created >= cutoff):
            newest[key] = gid
    return set(newest.values())


def _doomed_generations(s: Any, priority: int) -> list[tuple[str, dict[str, Any]]]:
    """(id, request) of the lane's finished generations that have no image, but the newest (`_newest_per_key`)."""
    in_lane = select(QueueItem.generation_id).where(QueueItem.priority == priority)
    kept = _newest_per_key(s, priority)
    rows = s.execute(
        select(Generation.id, Generation.request)
        .where(Generation.id.in_(in_lane), Generation.status.in_(FINISHED), Generation.id.not_in(kept))
        .where(~exists().where(Image.generation_id == Generation.id))
        .with_for_update()
    ).all()
    return [(i, r) for i, r in rows]


def _named_assets(requests: Iterable[dict[str, Any]]) -> set[str]:
    """The asset ids the requests' layers name (`layers[].image_id`)."""
    out: set[str] = set()
    for request in requests:
        for layer in (request or {}).get("layers") or ():
            if isinstance(layer, dict) and isinstance(layer.get("image_id"), str):
                out.add(layer["image_id"])
    return out


def _unreferenced_assets(s: Any, candidates: set[str]) -> dict[str, str]:
    """{id: file name} of the candidates that are layer assets nothing else refers to (after the deletes)."""
    if not candidates:
        return {}
    rows = s.execute(
        select(Image.id, Image.file_name, Image.created_at).where(
            Image.id.in_(sorted(candidates)),
            Image.category.in_(ASSET_CATEGORIES),
            Image.board_id.is_(None),
            Image.generation_id.is_(None),
            ~Image.id.in_(select(Board.cover_image_id).where(Board.cover_image_id.is_not(None))),
        ).with_for_update()
    ).all()
    return {i: f for i, f, created in rows if not _named_elsewhere(s, i, created - CLOCK_SKEW)}


def _named_elsewhere(s: Any, image_id: str, since: datetime) -> bool:
    """Whether any generation's request or any saved canvas version made since `since` names the asset.
    Only those can: an asset's id is new at its upload. So the search covers the time since the upload
    (an index range on generations), not the whole history, inside the write transaction it holds."""
    needle = f"%{image_id}%"  # a 32-hex id: no LIKE wildcards in it
    for table, column in ((Generation, Generation.request), (CanvasVersion, CanvasVersion.document)):
        if s.scalar(select(exists().where(table.created_at >= since, cast(column, Text).like(needle)))):
            return True
    return False


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
