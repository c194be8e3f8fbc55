"""One queue item's job, wherever it runs (the embedded worker thread or a remote worker): the stored
request -> canvas compile -> engine run -> images saved (file, then row) -> events. The caller claims the
item before and finishes it after (db/queue.py), so the transition and its holder stay the caller's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from db import images as db_images
from db import queue
from db.errors import StorageError
from db.models import Generation
from invoke_core.errors import GenerationCancelled, InvalidCanvasError, InvokeCoreError
from invoke_core.upscale import output_bounds

from .events import GenerationProgress, ImageAdded, QueueItemStatusChanged, preview_data_url
from .jobs import build_document, link_layer_assets, name_layers
from .live import is_live
from .live import prune as prune_live
from .schemas import JobDocumentIn

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str = "completed"  # completed | failed | canceled
    error_type: str | None = None
    error_message: str | None = None
    timings: dict[str, Any] | None = None
    mode: str | None = None
    image_ids: list[str] = field(default_factory=list)
    thumbnails: list[tuple[str, bytes]] = field(default_factory=list)  # (image id, PNG) left for after the event


def publish_status(events: Any, item: queue.QueueItemRecord, image_ids: tuple[str, ...] = ()) -> None:
    events.publish(
        QueueItemStatusChanged(
            item_id=item.id,
            batch_id=item.batch_id,
            generation_id=item.generation_id,
            status=item.status,
            error_type=item.error_type,
            error_message=item.error_message,
            image_ids=image_ids,
            worker=item.worker,
            live=is_live(item),
        )
    )


def _load_pixels(s: Any, image_id: str) -> np.ndarray:
    record = db_images.get_image(s.db, image_id)
    with s.store.open(record.file_name) as f, Image.open(f) as img:
        return np.asarray(img.convert("RGBA"))


@dataclass
class Generated:
    """A job's images, made and not yet saved (what `store_results` writes)."""

    results: list[Any]
    request_json: dict[str, Any]
    board_id: str | None
    canvas_id: str | None


def run_job(s: Any, engine: Any, item: queue.QueueItemRecord, should_stop: Callable[[], bool]) -> Outcome:
    """Run the item's job on `engine` and save its images; `s` gives db, store, events and image_payload.
    `should_stop` is asked between denoising steps. Never raises for a job's own failure: the outcome says it."""
    out, generated = generate(s, engine, item, should_stop)
    return store_results(s, item, generated, out) if generated is not None else out


def generate(s: Any, engine: Any, item: queue.QueueItemRecord, should_stop: Callable[[], bool]) -> tuple[Outcome, Generated | None]:
    """The stored request -> canvas compile -> engine run: the outcome so far and the images (None when
    the job failed or was cancelled). Nothing is written yet, so the caller may start the next job's
    denoising while `store_results` writes this one's."""
    from invoke_core.compile import compile_canvas

    out = Outcome()
    try:
        with s.db.read() as session:
            generation = session.get(Generation, item.generation_id)
            request_json, board_id, canvas_id = generation.request, generation.board_id, generation.canvas_id
        started = time.perf_counter()
        try:
            request = compile_canvas(build_document(request_json, lambda image_id: _load_pixels(s, image_id)))
        except InvalidCanvasError as exc:  # name the layers as the user knows them
            raise InvalidCanvasError(name_layers(str(exc), JobDocumentIn.model_validate(request_json).layers)) from None
        out.mode = "upscale" if request.params.upscale is not None else request.mode.value
        bbox = tuple(output_bounds(request))  # where the preview shows: an upscale's is the result's place

        def on_progress(progress) -> None:
            at = time.time()
            if s.events.progress_due(item.id, progress.step, progress.total):
                image = progress.preview  # made here, only for the steps that are sent
                preview = preview_data_url(image) if image is not None else None
                s.events.publish(GenerationProgress(item.id, progress.step, progress.total, preview, bbox, at, progress.phase))

        canvas_s = time.perf_counter() - started
        results = engine.run(request, on_progress, should_stop)
        if results:  # the engine's, and what the server adds around it (the canvas compile; the save, below)
            out.timings = {**results[0].metadata.get("timings", {}), "canvas": round(canvas_s, 4)}
        return out, Generated(results, request_json, board_id, canvas_id)
    except Exception as exc:
        _failed(out, item, exc)
        return out, None


def store_results(s: Any, item: queue.QueueItemRecord, generated: Generated, out: Outcome, defer_thumbnails: bool = False) -> Outcome:
    """Each image: PNG with its metadata -> file, thumbnail, row (db/images.add_image), then its event.
    `defer_thumbnails`: the thumbnails are left in `out.thumbnails` for `write_thumbnails`, after the
    item's status event (off the path from the job's end to its result on screen).
    A live item's render (server/live.py) is saved as a "live" image: no board, no thumbnail, no event,
    and the older live renders are deleted."""
    from invoke_core.metadata import png_bytes

    started = time.perf_counter()
    live = is_live(item)
    try:
        for result in generated.results:
            meta = {
                **link_layer_assets(result.metadata, generated.request_json),
                "generation_id": item.generation_id,
                "queue_item_id": item.id,
                "canvas_id": generated.canvas_id,
            }
            data = png_bytes(result.image, meta)
            record = db_images.add_image(
                s.db,
                s.store,
                data,
                origin="generated",
                category=db_images.LIVE if live else "general",
                board_id=None if live else generated.board_id,
                metadata=meta,
                generation_id=item.generation_id,
                missing_board="uncategorised",  # the board was deleted while the job ran: keep the image
                thumbnail=not defer_thumbnails and not live,
            )
            out.image_ids.append(record.id)
            if live:
                continue
            if defer_thumbnails:
                out.thumbnails.append((record.id, data))
            if generated.board_id is not None and record.board_id is None:
                log.warning(
                    "queue item %s: board %s was deleted while the job ran; image %s saved to Uncategorised",
                    item.id, generated.board_id, record.id,
                )
            s.events.publish(ImageAdded(image=s.image_payload(record)))
    except Exception as exc:
        _failed(out, item, exc)
    if live and out.image_ids:
        prune_live(s, tuple(out.image_ids))
    if out.timings is not None:
        out.timings = {**out.timings, "save": round(time.perf_counter() - started, 4)}
    return out


def write_thumbnails(s: Any, out: Outcome) -> None:
    """The thumbnails `store_results` left (a failure here only logs: the route makes them on request)."""
    for image_id, data in out.thumbnails:
        try:
            s.store.write_thumbnail(image_id, data)
        except Exception:
            log.exception("thumbnail of image %s not written (made on first request instead)", image_id)
    out.thumbnails.clear()


def _failed(out: Outcome, item: queue.QueueItemRecord, exc: Exception) -> None:
    if isinstance(exc, GenerationCancelled):
        out.status, out.error_type, out.error_message = "canceled", None, str(exc)
    elif isinstance(exc, (InvokeCoreError, StorageError)):
        out.status, out.error_type, out.error_message = "failed", type(exc).__name__, str(exc)
    else:  # out of memory, a broken model file...: this item fails, the worker goes on
        log.exception("queue item %s failed", item.id)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        out.status, out.error_type, out.error_message = "failed", type(exc).__name__, first or type(exc).__name__
