"""The web process's side of remote workers: the same controls the routes use on the embedded worker
(server/worker.py QueueWorker), carried out through the database and Redis instead of in this process."""

from __future__ import annotations

import logging
from typing import Any

from db import queue

from . import broker

log = logging.getLogger(__name__)
PAUSED = "paused"


class RemoteQueue:
    """No engine here: jobs run on `invoke-canvas worker` processes (server/scale/worker_process.py)."""

    engine = None
    engine_error = None

    def __init__(self, services: Any):
        self.s = services
        self.celery = broker.make_celery(services.config.broker_url)
        self.redis = broker.redis_client(services.config.broker_url)

    def start(self) -> None:
        # Items queued while no web process was up (or whose messages were lost with a Redis restart).
        self.wake(queue.status_counts(self.s.db)["pending"])

    def stop(self, timeout: float = 10.0) -> None:
        """Nothing runs here: a web restart never touches the items workers hold."""

    def wake(self, count: int = 1) -> None:
        broker.wake(self.celery, count)

    @property
    def paused(self) -> bool:
        return queue.get_setting(self.s.db, PAUSED) == "1"

    def pause(self) -> None:
        queue.set_setting(self.s.db, PAUSED, "1")

    def resume(self) -> None:
        queue.set_setting(self.s.db, PAUSED, "0")
        self.wake(queue.status_counts(self.s.db)["pending"])  # messages taken while paused ran nothing

    def cancel_current(self, item_id: int) -> None:
        broker.request_cancel(self.redis, item_id)

    def forget_cancel(self, item_ids) -> None:
        broker.forget_cancel(self.redis, list(item_ids))

    def keep_loaded(self, model_id: str, keep: bool) -> None:
        """Stored with the model's options (the database); each worker loads it before its next claim."""

    @property
    def current_item_id(self) -> int | None:
        running = queue.list_items(self.s.db, "in_progress", limit=1)
        return running[0].id if running else None

    def workers(self) -> list[dict[str, Any]]:
        return broker.live_workers(self.redis)

    @property
    def device(self) -> str | None:
        """The devices of the live workers ("cpu", "cuda:0, cuda:1"); None while none is up."""
        devices = sorted({w.get("device") for w in self.workers() if w.get("device")})
        return ", ".join(devices) or None
