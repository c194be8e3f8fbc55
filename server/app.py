"""The application factory: config, database, asset store, events, worker, blueprints, Socket.IO."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, request, send_from_directory
from flask_socketio import SocketIO, join_room

from db import queue
from db.assets import AssetStore
from db.session import Database
from invoke_core.model_records import ModelRegistry

from .auth import effective_token, install_auth, token_ok
from .config import ServerConfig, load_config
from .errors import register_error_handlers
from .events import QUEUE_ROOM, EventBus
from .routes import boards, canvas, health, history, images, models
from .routes import queue as queue_routes
from .services import EXTENSION, Services
from .worker import QueueWorker

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
log = logging.getLogger(__name__)


def create_app(config: ServerConfig | dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a ServerConfig, or overrides merged over file and environment."""
    cfg = config if isinstance(config, ServerConfig) else load_config(config)
    app = Flask(__name__, static_folder=None)
    # Uploads beyond the limit are refused before they are read (multipart overhead allowed for).
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes + 1024 * 1024
    app.json.sort_keys = False  # keep the models' field order

    token, generated = effective_token(cfg)
    app.config["INVOKE_CANVAS_TOKEN"] = token
    app.config["INVOKE_CANVAS_TOKEN_GENERATED"] = generated

    socketio = SocketIO()
    # Same origin only unless configured; threading mode because torch work blocks.
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=cfg.cors_origins or [cfg.origin])
    app.extensions["socketio_instance"] = socketio

    db = Database(cfg.root)
    recovered = queue.recover_interrupted(db)
    if recovered:
        log.warning("queue items %s were interrupted by a stop and are now failed (retry puts them back)", recovered)
    services = Services(
        config=cfg,
        db=db,
        store=AssetStore(cfg.root),
        registry=ModelRegistry(cfg.root),
        events=EventBus(socketio, cfg.progress_per_second),
    )
    services.worker = QueueWorker(services)
    app.extensions[EXTENSION] = services

    register_error_handlers(app)
    install_auth(app, token, cfg)
    for module in (health, boards, images, canvas, queue_routes, models, history):
        app.register_blueprint(module.bp)

    @socketio.on("connect")
    def _connect(auth: Any = None):
        given = auth.get("token") if isinstance(auth, dict) else request.args.get("token")
        if not token_ok(token, given):
            return False  # refused at the handshake
        join_room(QUEUE_ROOM)
        return None

    @app.get("/")
    def index():
        return send_from_directory(WEB_DIR, "index.html")

    @app.get("/<path:filename>")
    def web_files(filename: str):
        # send_from_directory refuses paths that leave the folder.
        return send_from_directory(WEB_DIR, filename)

    if cfg.start_worker:
        services.worker.start()
    return app


def shutdown(app: Flask) -> None:
    services: Services = app.extensions[EXTENSION]
    services.worker.stop()
    services.db.dispose()
