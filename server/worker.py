"""The embedded queue worker: one thread in the server process. Claim item -> run it (server/job_runner.py)
-> finish it -> publish.

Every transition is committed before its event goes out. A failing job fails its item with the
error's type and message and the worker goes on; a cancelled one stops within one denoising step.
The engine (torch, the model cache) lives here, created on the worker thread, so the web routes
never import torch. Workers on other machines are server/scale/worker_process.py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from db import queue
from db.errors import Conflict
from invoke_core.errors import InvokeCoreError

from .events import ModelLoad
from .job_runner import publish_status, run_job

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

    def _process(self, item: queue.QueueItemRecord) -> None:
        self.current_item_id = item.id
        publish_status(self.s.events, item)
        try:
            outcome = run_job(self.s, self.engine, item, lambda: self._cancelled(item.id) or self._stop.is_set())
        finally:
            self.current_item_id = None
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
