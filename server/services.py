"""What the routes and the worker share: config, database, asset store, model registry, events, worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any

from flask import current_app

from db.assets import AssetStore
from db.session import Database
from invoke_core.model_records import ModelRegistry

from .config import ServerConfig
from .events import EventBus

EXTENSION = "invoke_canvas"


@dataclass
class Services:
    config: ServerConfig
    db: Database
    store: AssetStore
    registry: ModelRegistry
    events: EventBus
    worker: Any = None  # QueueWorker
    model_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sign_url: Callable[[str], str] = str  # image URLs that work in <img src> (server/auth.py UrlSigner)

    def image_payload(self, record: Any) -> dict[str, Any]:
        """An image as clients see it: the record plus the URLs of its file and thumbnail."""
        data = asdict(record)
        data["created_at"] = record.created_at.isoformat()
        data["url"] = self.sign_url(f"/api/v1/images/{record.id}/file")
        data["thumbnail_url"] = self.sign_url(f"/api/v1/images/{record.id}/thumbnail")
        return data


def services() -> Services:
    return current_app.extensions[EXTENSION]
