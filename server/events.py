"""Typed Socket.IO event payloads; the only module that emits. Clients are in the "queue" room.

The server is the source of truth: events tell clients what changed; a client that reconnects
re-reads state over REST.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

QUEUE_ROOM = "queue"


@dataclass(frozen=True)
class QueueItemStatusChanged:
    item_id: int
    batch_id: str
    generation_id: str
    status: str
    error_type: str | None = None
    error_message: str | None = None
    image_ids: tuple[str, ...] = ()
    worker: str | None = None  # who holds (or last held) it: "embedded", or a remote worker's name
    live: bool = False  # a live-painting item (server/live.py): its render is not a gallery image


@dataclass(frozen=True)
class GenerationProgress:
    item_id: int
    step: int
    total: int
    preview: str | None  # data URL of a small JPEG
    bbox: tuple[int, int, int, int] | None = None
    at: float | None = None  # the worker's wall clock (Unix seconds) at the step's end: clients measure the delay
    phase: str | None = None  # "compiling": step 0, the fast path compiles for this size first (invoke_core/fast_path.py)


@dataclass(frozen=True)
class ImageAdded:
    image: dict[str, Any]


@dataclass(frozen=True)
class AssetsDeleted:
    image_ids: tuple[str, ...]  # layer assets deleted by the server (server/live.py): clients upload again


@dataclass(frozen=True)
class BoardChanged:
    board_id: str | None
    change: str  # created, renamed, moved, archived, deleted, cover, images


@dataclass(frozen=True)
class ModelInstallProgress:
    job_id: str
    source: str
    status: str  # started, completed, failed
    message: str | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class ModelLoad:
    model_id: str
    status: str  # started, finished
    seconds: float | None = None
    # once finished: each component of the model, {"name", "bytes", "shared"} (shared: already loaded for another)
    components: list[dict] | None = None


_NAMES = {
    QueueItemStatusChanged: "queue_item_status_changed",
    GenerationProgress: "generation_progress",
    ImageAdded: "image_added",
    AssetsDeleted: "assets_deleted",
    BoardChanged: "board_changed",
    ModelInstallProgress: "model_install_progress",
    ModelLoad: "model_load",
}


def preview_data_url(image, max_side: int = 256, quality: int = 70) -> str:
    """A small JPEG data URL of a PIL image (the latent preview, 1/8 of the generation size)."""
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class EventBus:
    """Emits typed events to the queue room; progress is throttled to `progress_per_second`."""

    def __init__(self, socketio, progress_per_second: float = 10.0):
        self._socketio = socketio
        self._min_interval = 1.0 / progress_per_second
        self._last_progress: dict[int, float] = {}
        self._lock = threading.Lock()
        self._latest: dict[int, GenerationProgress] = {}  # each running item's last progress (the A1111 API's /progress)

    def latest_progress(self, item_id: int) -> GenerationProgress | None:
        """The last progress published through this bus for the item (this process's jobs only)."""
        return self._latest.get(item_id)

    def publish(self, event: Any) -> None:
        if isinstance(event, GenerationProgress):
            self._latest[event.item_id] = event
            while len(self._latest) > 64:
                self._latest.pop(next(iter(self._latest)))
        elif isinstance(event, QueueItemStatusChanged) and event.status in ("completed", "failed", "canceled"):
            self._latest.pop(event.item_id, None)
        payload = asdict(event)
        self._socketio.emit(_NAMES[type(event)], payload, to=QUEUE_ROOM)

    def progress_due(self, item_id: int, step: int, total: int) -> bool:
        """True when a progress event for this item may go out now (always for the last step)."""
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(item_id, 0.0)
            if step < total and now - last < self._min_interval:
                return False
            self._last_progress[item_id] = now
            if step >= total:
                self._last_progress.pop(item_id, None)
            return True
