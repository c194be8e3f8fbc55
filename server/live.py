"""The live lane: live painting's jobs in the persistent queue. Its rules, in one place:

- A live job is a canvas job of one image at LIVE_PRIORITY, above any priority the API accepts for other
  jobs (at most 100): every worker (embedded or remote) claims it first, after the job it is running (a
  running job is never interrupted for it).
- A newer live job supersedes the older ones of its client (a browser tab: the job's `client` key, its lane;
  no key: the shared lane): pending ones are canceled in the enqueue's own transaction (so never more than
  one live item of a client waits), one in progress is asked to stop at its next denoising step. Other
  clients' live jobs are left alone: two tabs, or two artists on one studio server, take turns.
- A fixed seed (LIVE_SEED when the job names none): the render changes only with the painting. The fast
  settings (steps, CFG, scheduler, strength) are the web's to send, read from invoke_core/live.py through
  the config and models APIs.
- Its render is an image of category "live": not listed, counted or searched (db/images.py), no
  thumbnail and no `image_added` event; the newest LIVE_RETAINED renders stay (the one on screen, and one
  the artist may be keeping), older ones are deleted as newer ones are saved. Keeping one
  (`POST /live/images/<id>/keep`) makes it a gallery image.
- Live items are not retried: the painting has moved on; the next change queues a new one.
- The lane cleans up after itself (`cleanup`, db/live_cleanup.py) when a live job ends (after its event,
  off the path to the render on screen; the items a newer one superseded go then too): its finished generations
  without a render (superseded, failed, pruned) go with their queue items, then the layer assets only
  their requests named (never one another generation's request, a saved canvas or a board names, nor a
  gallery image); files after the rows. Never a pending or running generation, one whose render was kept,
  nor the newest of each client painting (its latest layers). Clients hear `assets_deleted` (the web's upload cache
  forgets those ids). Never fails the job: what is left goes next time.
- A generation is live when its queue item is at LIVE_PRIORITY (the one mark; `clear` keeps those items):
  `GET /history` leaves live generations out unless their render was kept.

Module-level imports stay torch- and schema-free: server/schemas.py imports the constants.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from db import images as db_images
from db import live_cleanup, queue
from db.errors import InvalidInput

if TYPE_CHECKING:
    from .schemas import JobDocumentIn

log = logging.getLogger(__name__)

LIVE_PRIORITY = 1000  # the API's priorities stop at 100
LIVE_SEED = 20240611  # a live job that names no seed gets this one, never a random one
LIVE_RETAINED = 4  # live renders kept before the oldest are deleted
DEBOUNCE_MS = 300  # the web queues a live job this long after the last change (published by GET /config)


def is_live(item: Any) -> bool:
    """Whether a queue item (or its priority) is in the live lane."""
    priority = item if isinstance(item, int) else item.priority
    return priority == LIVE_PRIORITY


def enqueue(
    s: Any, document: JobDocumentIn, client: str | None = None
) -> tuple[queue.QueueItemRecord, list[queue.QueueItemRecord], list[int], int]:
    """Check and queue a live job in place of the older ones of `client` (its lane key: a browser tab's;
    None: the shared one); returns (the item, the pending items canceled, the ids of those in progress,
    asked to stop, the seed). Announces every change and wakes the workers."""
    from .events import QueueItemStatusChanged
    from .jobs import check_document, split_batch

    if document.params.batch_size != 1:
        raise InvalidInput(f"a live job renders one image: batch_size must be 1, not {document.params.batch_size}")
    if document.params.seed is None:
        document = document.model_copy(update={"params": document.params.model_copy(update={"seed": LIVE_SEED})})
    check_document(document, s.db, s.registry)
    (job,) = split_batch(document, s.registry)
    item, canceled, running = queue.enqueue_superseding(s.db, job, LIVE_PRIORITY, client)
    for old in running:
        s.worker.cancel_current(old)  # it finishes as canceled within one step
    for old in (*canceled, item):
        s.events.publish(
            QueueItemStatusChanged(old.id, old.batch_id, old.generation_id, old.status, old.error_type, old.error_message, live=True)
        )
    s.worker.wake(1)
    # the superseded items go with the next live job's end (`finished`), off this request's path
    return item, canceled, running, job.seed


def prune(s: Any, protect: tuple[str, ...] = ()) -> None:
    """Delete the superseded live renders (all but the newest LIVE_RETAINED); never fails the job."""
    try:
        db_images.prune_live(s.db, s.store, LIVE_RETAINED, protect)
    except Exception:  # a busy database: the next render's save prunes them
        log.exception("old live renders not deleted")


def finished(s: Any, item: Any) -> None:
    """After a queue item's end and its event (off the path to the render on screen): a live one cleans up
    what it superseded, what its render's save pruned, or itself when it made no render."""
    if is_live(item):
        cleanup(s)


def cleanup(s: Any) -> None:
    """Delete the lane's finished generations without a render and the layer assets only they named, then
    tell the clients which assets went; never fails the job (what is left goes next time)."""
    from .events import AssetsDeleted

    try:
        purged = live_cleanup.purge_lane(s.db, s.store, LIVE_PRIORITY)
    except Exception:  # a busy database: the next live job's end cleans up
        log.exception("old live generations not deleted")
        return
    if purged.image_ids:
        s.events.publish(AssetsDeleted(image_ids=tuple(purged.image_ids)))
