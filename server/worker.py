"""The queue worker: one thread per device. Claim item -> compile -> run -> save images -> publish.

Every transition is committed before its event goes out. A failing job fails its item with the
error's type and message and the worker goes on; a cancelled one stops within one denoising step.
The engine (torch, the model cache) lives here, created on the worker thread, so the web routes
never import torch.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from PIL import Image

from db import images as db_images
from db import queue
from db.errors import Conflict, StorageError
from db.models import Generation
from invoke_core.errors import GenerationCancelled, InvalidCanvasError, InvokeCoreError

from .events import GenerationProgress, ImageAdded, ModelLoad, QueueItemStatusChanged, preview_data_url
from .jobs import build_document, link_layer_assets, name_layers
from .schemas import JobDocumentIn

log = logging.getLogger(__name__)


class QueueWorker:
    def __init__(self, services: Any):
        self.s = services
        self._thread = threading.Thread(target=self._loop, name="queue-worker", daemon=True)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = threading.Event()
        # Cancels asked for items that are running or about to run (claimed, not yet started here).
        self._cancel_requested: set[int] = set()
        self._cancel_lock = threading.Lock()
        self.current_item_id: int | None = None
        self.engine = None
        self.engine_error: str | None = None
        self.engine_ready = threading.Event()
        self._preload: list[str] = []  # models to load between items ("keep loaded" turned on)
        self._preload_lock = threading.Lock()

    # --- control (called from request threads) -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def keep_loaded(self, model_id: str, keep: bool) -> None:
        """Keep a model loaded (loaded by the worker between items) or let it be evicted again."""
        if self.engine is None:
            return
        if keep:
            self.engine.cache.resident.add(model_id)
            with self._preload_lock:
                self._preload.append(model_id)
            self._wake.set()
        else:
            self.engine.cache.resident.discard(model_id)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def cancel_current(self, item_id: int) -> None:
        """Ask the in-progress item to stop at its next step (kept even if its job has not begun here yet)."""
        with self._cancel_lock:
            self._cancel_requested.add(item_id)

    def forget_cancel(self, item_ids) -> None:
        """A retried item keeps its id: an old cancel must not stop its new run."""
        with self._cancel_lock:
            self._cancel_requested.difference_update(item_ids)

    def _cancelled(self, item_id: int) -> bool:
        return item_id in self._cancel_requested

    # --- the thread ----------------------------------------------------------------------------------
    def _make_engine(self):
        from invoke_core.engine import Engine

        cfg = self.s.config
        try:
            engine = Engine(
                root=cfg.root,
                device=cfg.device,
                dtype=cfg.dtype,
                ram_cache_gb=cfg.ram_cache_gb,
                vram_cache_gb=cfg.vram_cache_gb,
                compile_backend=cfg.compile,
                vae_tiling=cfg.vae_tiling,
                offload=cfg.offload,
            )
        except InvokeCoreError as exc:
            self.engine_error = str(exc)
            log.error("generation engine unavailable: %s", exc)
            return None
        engine.cache.on_load = lambda model_id, status, seconds, components: self.s.events.publish(
            ModelLoad(model_id, status, seconds, components)
        )
        return engine

    def _loop(self) -> None:
        self.engine = self._make_engine()
        if self.engine is not None:
            resident = set(self.s.config.resident_models) | self.s.registry.resident_ids()
            self.engine.cache.resident |= resident
            self._preload.extend(sorted(resident))
        self.engine_ready.set()
        while not self._stop.is_set():
            self._load_resident()
            if self._paused.is_set() or self.engine is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                item = queue.claim_next(self.s.db)
            except Exception:  # the database is busy or gone: try again shortly
                log.exception("could not claim a queue item")
                self._stop.wait(1.0)
                continue
            if item is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._process(item)

    def _load_resident(self) -> None:
        """Load the models waiting to be kept loaded (in this thread: never beside a job)."""
        while self.engine is not None:
            with self._preload_lock:
                if not self._preload:
                    return
                model_id = self._preload.pop(0)
            if model_id not in self.engine.cache.resident:
                continue  # turned off again meanwhile
            try:
                self.engine.cache.get(self.engine.registry.get(model_id), self.engine.device)
            except InvokeCoreError as exc:
                log.warning("could not keep model %s loaded: %s", model_id, exc)

    def _publish_status(self, item: queue.QueueItemRecord, image_ids: tuple[str, ...] = ()) -> None:
        self.s.events.publish(
            QueueItemStatusChanged(
                item_id=item.id,
                batch_id=item.batch_id,
                generation_id=item.generation_id,
                status=item.status,
                error_type=item.error_type,
                error_message=item.error_message,
                image_ids=image_ids,
            )
        )

    def _load_pixels(self, image_id: str) -> np.ndarray:
        record = db_images.get_image(self.s.db, image_id)
        with Image.open(self.s.store.path(record.file_name)) as img:
            return np.asarray(img.convert("RGBA"))

    def _process(self, item: queue.QueueItemRecord) -> None:
        from invoke_core.compile import compile_canvas

        self.current_item_id = item.id
        self._publish_status(item)
        status, error_type, error_message, timings, mode = "completed", None, None, None, None
        image_ids: list[str] = []
        try:
            with self.s.db.read() as session:
                generation = session.get(Generation, item.generation_id)
                request_json, board_id, canvas_id = generation.request, generation.board_id, generation.canvas_id
            try:
                request = compile_canvas(build_document(request_json, self._load_pixels))
            except InvalidCanvasError as exc:  # name the layers as the user knows them
                raise InvalidCanvasError(name_layers(str(exc), JobDocumentIn.model_validate(request_json).layers)) from None
            mode = request.mode.value
            bbox = tuple(request.bbox)

            def on_progress(progress) -> None:
                if self.s.events.progress_due(item.id, progress.step, progress.total):
                    preview = preview_data_url(progress.preview) if progress.preview is not None else None
                    self.s.events.publish(GenerationProgress(item.id, progress.step, progress.total, preview, bbox))

            results = self.engine.run(request, on_progress, lambda: self._cancelled(item.id) or self._stop.is_set())
            from invoke_core.metadata import png_bytes

            for result in results:
                meta = {
                    **link_layer_assets(result.metadata, request_json),
                    "generation_id": item.generation_id,
                    "queue_item_id": item.id,
                    "canvas_id": canvas_id,
                }
                record = db_images.add_image(
                    self.s.db,
                    self.s.store,
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
                image_ids.append(record.id)
                self.s.events.publish(ImageAdded(image=self.s.image_payload(record)))
            timings = results[0].metadata.get("timings") if results else None
        except GenerationCancelled as exc:
            status, error_type, error_message = "canceled", None, str(exc)
        except (InvokeCoreError, StorageError) as exc:
            status, error_type, error_message = "failed", type(exc).__name__, str(exc)
        except Exception as exc:  # out of memory, a broken model file...: this item fails, the worker goes on
            log.exception("queue item %s failed", item.id)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            status, error_type, error_message = "failed", type(exc).__name__, first or type(exc).__name__
        finally:
            self.current_item_id = None
        try:
            if status == "canceled" and self._stop.is_set() and not self._cancelled(item.id):
                finished = queue.requeue(self.s.db, item.id)  # stopped by a clean shutdown: run it next time
            else:
                finished = queue.finish(self.s.db, item.id, status, error_type, error_message, timings=timings, mode=mode)
        except Conflict:
            log.warning("queue item %s changed state while running", item.id)
            return
        finally:
            self.forget_cancel([item.id])
        self._publish_status(finished, tuple(image_ids))
