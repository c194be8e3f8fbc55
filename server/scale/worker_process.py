"""`invoke-canvas worker`: one worker for one device, on any machine that reaches the database, Redis and
the shared data folder. Runs Celery's worker loop (solo pool: one job at a time, prefetch 1, late acks);
each message claims the next queue item in the database and runs it through server/job_runner.py.

A heartbeat thread renews the lease on the running item, takes back items whose workers died (their
leases expired) and announces this worker in Redis. A cancel is a Redis key read between steps.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from db import queue
from db.assets import open_store
from db.errors import Conflict
from db.model_store import DatabaseRecordStore
from db.session import Database
from invoke_core import allocator
from invoke_core.model_records import JsonRecordStore, ModelRegistry

from .. import live
from ..auth import UrlSigner
from ..config import ServerConfig
from ..events import EventBus, ModelLoad
from ..job_runner import publish_status, run_job
from ..services import Services
from . import broker
from .remote_queue import PAUSED

log = logging.getLogger(__name__)


def default_name(device: str | None) -> str:
    return f"{socket.gethostname()}-{(device or 'auto').replace(':', '')}-{os.getpid()}"


class WorkerEvents(EventBus):
    """Events are news, not state (clients re-read REST after a reconnect): a Redis hiccup while
    publishing is logged and the job goes on."""

    def publish(self, event: Any) -> None:
        try:
            super().publish(event)
        except Exception as exc:
            log.warning("could not publish %s: %s", type(event).__name__, exc)


def _retrying(action, tries: int = 3, pause_s: float = 1.0):
    """The finishing commit, again after a moment if the database was away (its images are saved already:
    a lost finish would run the job a second time once the lease expired)."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(tries):
        try:
            return action()
        except OperationalError:
            if attempt == tries - 1:
                raise
            time.sleep(pause_s)
    return None


def shared_services(cfg: ServerConfig) -> Services:
    """The database, asset folder, registry and event bus a remote worker shares with the web processes."""
    from flask_socketio import SocketIO

    db = Database(cfg.root, url=cfg.database_url)
    registry = ModelRegistry(cfg.root, DatabaseRecordStore(db, import_from=JsonRecordStore(cfg.root / "models")))
    # Write-only: emits go to the Redis message queue, and every web process sends them to its clients.
    emitter = SocketIO(message_queue=cfg.broker_url, channel=broker.SOCKETIO_CHANNEL)
    services = Services(config=cfg, db=db, store=open_store(cfg.root, cfg.assets_url), registry=registry,
                        events=WorkerEvents(emitter, cfg.progress_per_second))
    services.sign_url = UrlSigner(cfg.token).sign
    return services


class RemoteWorker:
    def __init__(self, cfg: ServerConfig, name: str | None = None):
        from invoke_core.engine import Engine

        self.cfg = cfg
        self.name = name or default_name(cfg.device)
        self.s = shared_services(cfg)
        self.redis = broker.redis_client(cfg.broker_url)
        self.celery = broker.make_celery(cfg.broker_url)
        self.engine = Engine(
            root=cfg.root, device=cfg.device, dtype=cfg.dtype, ram_cache_gb=cfg.ram_cache_gb,
            vram_cache_gb=cfg.vram_cache_gb, compile_backend=cfg.compile, fast_path=cfg.fast_path, vae_tiling=cfg.vae_tiling,
            offload=cfg.offload, registry=self.s.registry,
        )
        self.engine.cache.on_load = lambda model_id, status, seconds, components: self.s.events.publish(
            ModelLoad(model_id, status, seconds, components)
        )
        self.current: queue.QueueItemRecord | None = None
        self.lost = threading.Event()  # the running item's lease was lost: stop it, do not finish it
        self._stop = threading.Event()
        self.heartbeat_s = min(2.0, cfg.lease_seconds / 5)
        self._idle_beats = 0
        self._failed_resident: set[str] = set()

    # --- one message: claim and run the next item ---------------------------------------------------
    def run_next(self) -> int | None:
        """Claim the next item (if the queue is not paused) and run it; its id, or None if there was none."""
        if queue.get_setting(self.s.db, PAUSED) == "1":
            return None  # resume sends fresh messages
        self.sync_resident()
        loaded = set(self.engine.cache.stats().loaded)
        item = queue.claim_next(self.s.db, self.name, prefer_models=loaded)
        if item is None:
            allocator.release()  # idle: the last jobs' freed buffers go back to the system
            return None
        self.lost.clear()
        self.current = item
        try:
            publish_status(self.s.events, item)
            outcome = run_job(
                self.s, self.engine, item,
                lambda: self.lost.is_set() or self._stop.is_set() or broker.cancel_requested(self.redis, item.id),
            )
        finally:
            self.current = None
        if self.lost.is_set():
            log.warning("queue item %s was given to another worker (lease lost); its result is dropped here", item.id)
            return item.id
        try:
            if outcome.status == "canceled" and self._stop.is_set() and not broker.cancel_requested(self.redis, item.id):
                finished = queue.requeue(self.s.db, item.id, worker=self.name)
                broker.wake(self.celery)
            else:
                finished = _retrying(lambda: queue.finish(
                    self.s.db, item.id, outcome.status, outcome.error_type, outcome.error_message,
                    timings=outcome.timings, mode=outcome.mode, worker=self.name,
                ))
        except Conflict as exc:
            log.warning("queue item %s: %s", item.id, exc)
            return item.id
        finally:
            broker.forget_cancel(self.redis, [item.id])
        publish_status(self.s.events, finished, tuple(outcome.image_ids))
        live.finished(self.s, finished)
        return item.id

    # --- the heartbeat thread ------------------------------------------------------------------------
    def beat(self) -> None:
        """Renew this worker's lease and presence; take back the items of workers that stopped beating."""
        item = self.current
        if item is not None and not queue.heartbeat(self.s.db, self.name, item.id):
            self.lost.set()
        for back in queue.reclaim_expired(self.s.db, self.cfg.lease_seconds):
            log.warning("queue item %s: its worker stopped responding; %s", back.id,
                        "queued again" if back.status == "pending" else "failed")
            publish_status(self.s.events, back)
            if back.status == "pending":
                broker.wake(self.celery)
        broker.announce_worker(self.redis, self.info(), ttl_s=self.cfg.lease_seconds)
        # Messages lost with a Redis restart leave items pending with nobody told: an idle worker that sees
        # work waiting two beats in a row wakes itself (a spare message finds nothing and costs one query).
        waiting = self.current is None and queue.get_setting(self.s.db, PAUSED) != "1" and bool(
            queue.list_items(self.s.db, "pending", limit=1)
        )
        self._idle_beats = self._idle_beats + 1 if waiting else 0
        if self._idle_beats >= 2:
            self._idle_beats = 0
            broker.wake(self.celery)

    def info(self) -> dict[str, Any]:
        current = self.current
        return {
            "name": self.name,
            "device": self.engine.device.device,
            "loaded": sorted(set(self.engine.cache.stats().loaded)),
            "item_id": current.id if current else None,
        }

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception:  # the database or Redis is away for a moment: try again next beat
                log.exception("heartbeat failed")

    def sync_resident(self) -> None:
        """Keep loaded what the config and the UI's "keep loaded" toggles say (read from the shared database
        before each claim: a toggle on any web process reaches every worker at its next message)."""
        wanted = set(self.cfg.resident_models) | self.s.registry.resident_ids()
        self.engine.cache.resident.intersection_update(wanted)  # turned off: evictable again
        self.engine.cache.resident |= wanted
        self._failed_resident &= wanted  # turned off and on again: try once more
        loaded = set(self.engine.cache.stats().loaded)
        for model_id in sorted(wanted - loaded - self._failed_resident):
            try:
                self.engine.cache.get(self.s.registry.get(model_id), self.engine.device)
            except Exception as exc:
                self._failed_resident.add(model_id)
                log.warning("could not keep model %s loaded: %s", model_id, exc)

    # --- the process ---------------------------------------------------------------------------------
    def serve(self) -> int:
        self.sync_resident()
        self.beat()
        beats = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beats.start()
        def run_next() -> int | None:
            return self.run_next()

        self.celery.task(name=broker.RUN_NEXT, acks_late=True, ignore_result=True)(run_next)
        log.info("worker %s on %s: taking jobs from %s", self.name, self.engine.device.device, broker.CELERY_QUEUE)
        worker = self.celery.Worker(
            pool="solo", concurrency=1, hostname=f"{self.name}@{socket.gethostname()}", queues=[broker.CELERY_QUEUE],
            without_gossip=True, without_mingle=True, without_heartbeat=True, optimization="fair", quiet=True,
        )
        try:
            worker.start()  # until SIGTERM/SIGINT: Celery's warm shutdown lets the running job finish
        finally:
            self._stop.set()
            broker.retire_worker(self.redis, self.name)
            self.s.db.dispose()
        return worker.exitcode or 0
