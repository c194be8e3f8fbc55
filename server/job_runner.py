"""One queue item's job, wherever it runs (the embedded worker thread or a remote worker): the stored
request -> canvas compile -> engine run -> images saved (file, then row) -> events. The caller claims the
item before and finishes it after (db/queue.py), so the transition and its holder stay the caller's.
"""

from __future__ import annotations

import logging
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

from .events import GenerationProgress, ImageAdded, QueueItemStatusChanged, preview_data_url
from .jobs import build_document, link_layer_assets, name_layers
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
        )
    )


def _load_pixels(s: Any, image_id: str) -> np.ndarray:
    record = db_images.get_image(s.db, image_id)
    with s.store.open(record.file_name) as f, Image.open(f) as img:
        return np.asarray(img.convert("RGBA"))


def run_job(s: Any, engine: Any, item: queue.QueueItemRecord, should_stop: Callable[[], bool]) -> Outcome:
    """Run the item's job on `engine`; `s` gives db, store, events and image_payload. `should_stop` is
    asked between denoising steps. Never raises for a job's own failure: the outcome says it."""
    from invoke_core.compile import compile_canvas
    from invoke_core.metadata import png_bytes

    out = Outcome()
    try:
        with s.db.read() as session:
            generation = session.get(Generation, item.generation_id)
            request_json, board_id, canvas_id = generation.request, generation.board_id, generation.canvas_id
        try:
            request = compile_canvas(build_document(request_json, lambda image_id: _load_pixels(s, image_id)))
        except InvalidCanvasError as exc:  # name the layers as the user knows them
            raise InvalidCanvasError(name_layers(str(exc), JobDocumentIn.model_validate(request_json).layers)) from None
        out.mode = request.mode.value
        bbox = tuple(request.bbox)

        def on_progress(progress) -> None:
            if s.events.progress_due(item.id, progress.step, progress.total):
                preview = preview_data_url(progress.preview) if progress.preview is not None else None
                s.events.publish(GenerationProgress(item.id, progress.step, progress.total, preview, bbox))

        results = engine.run(request, on_progress, should_stop)
        for result in results:
            meta = {
                **link_layer_assets(result.metadata, request_json),
                "generation_id": item.generation_id,
                "queue_item_id": item.id,
                "canvas_id": canvas_id,
            }
            record = db_images.add_image(
                s.db,
                s.store,
                png_bytes(result.image, meta),
                origin="generated",
                board_id=board_id,
                metadata=meta,
                generation_id=item.generation_id,
                missing_board="uncategorised",  # the board was deleted while the job ran: keep the image
            )
            if board_id is not None and record.board_id is None:
                log.warning(
                    "queue item %s: board %s was deleted while the job ran; image %s saved to Uncategorised",
                    item.id, board_id, record.id,
                )
            out.image_ids.append(record.id)
            s.events.publish(ImageAdded(image=s.image_payload(record)))
        out.timings = results[0].metadata.get("timings") if results else None
    except GenerationCancelled as exc:
        out.status, out.error_type, out.error_message = "canceled", None, str(exc)
    except (InvokeCoreError, StorageError) as exc:
        out.status, out.error_type, out.error_message = "failed", type(exc).__name__, str(exc)
    except Exception as exc:  # out of memory, a broken model file...: this item fails, the worker goes on
        log.exception("queue item %s failed", item.id)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        out.status, out.error_type, out.error_message = "failed", type(exc).__name__, first or type(exc).__name__
    return out
