"""The embedded queue worker: one thread in the server process. Claim item -> run it (server/job_runner.py)
-> hand its images to the saver thread, which writes them, finishes the item and publishes, while this
thread claims and denoises the next.

Every transition is committed before its event goes out. A failing job fails its item with the
error's type and message and the worker goes on; a cancelled one stops within one denoising step.
The engine (torch, the model cache) lives here, created on the worker thread, so the web routes
never import torch. Workers on other machines are server/scale/worker_process.py.
"""

from __future__ import annotations

import logging
import threading
from queue import Queue as HandOff
from typing import Any

from db import queue
from db.errors import Conflict
from invoke_core import allocator
from invoke_core.errors import InvokeCoreError

from . import live
from .events import ModelLoad
from .job_runner import generate, publish_status, store_results, write_thumbnails

log = logging.getLogger(__name__)


class QueueWorker:
    def __init__(self, services: Any):
        self.s = services
        self._thread = threading.Thread(target=self._loop, name="queue-worker", daemon=True)
        self._saving: HandOff = HandOff(maxsize=1)  # (item, outcome, images) from the worker to the saver
        self._saver = threading.Thread(target=self._saver_loop, name="queue-saver", daemon=True)
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
        self._saver.start()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._saver.is_alive():  # what was made is saved and committed before the process ends
            self._saving.put(None)
            self._saver.join(timeout)

    def wake(self, count: int = 1) -> None:
        """New work (`count` items; this thread takes them all in order)."""
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
                fast_path=cfg.fast_path,
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
        busy = False
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
                if busy:  # the queue ran dry: the jobs' freed buffers go back to the system
                    busy = False
                    allocator.release()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            busy = True
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

    def _process(self, item: queue.QueueItemRecord) -> None:
        self.current_item_id = item.id
        publish_status(self.s.events, item)
        try:
            outcome, generated = generate(self.s, self.engine, item, lambda: self._cancelled(item.id) or self._stop.is_set())
        finally:
            self.current_item_id = None
        # The images are written (PNG, thumbnail, fsyncs, row) on the saver thread while this one claims and
        # starts the next item; at most one waits behind the one being written.
        self._saving.put((item, outcome, generated))

    def _saver_loop(self) -> None:
        while (entry := self._saving.get()) is not None:
            item, outcome, generated = entry
            try:
                if generated is not None:
                    outcome = store_results(self.s, item, generated, outcome, defer_thumbnails=True)
                self._finish(item, outcome)
                write_thumbnails(self.s, outcome)
            except Exception:  # never lose the saver: the item is left for recover_interrupted
                log.exception("queue item %s could not be finished", item.id)

    def _finish(self, item: queue.QueueItemRecord, outcome) -> None:
        """Commit the item's end (its images are saved), then its event."""
        try:
            if outcome.status == "canceled" and self._stop.is_set() and not self._cancelled(item.id):
                finished = queue.requeue(self.s.db, item.id)  # stopped by a clean shutdown: run it next time
            else:
                finished = queue.finish(
                    self.s.db, item.id, outcome.status, outcome.error_type, outcome.error_message,
                    timings=outcome.timings, mode=outcome.mode,
                )
        except Conflict:
            log.warning("queue item %s changed state while running", item.id)
            return
        finally:
            self.forget_cancel([item.id])
        publish_status(self.s.events, finished, tuple(outcome.image_ids))
        live.finished(self.s, finished)
