"""The application factory: config, database, asset store, events, worker, blueprints, Socket.IO."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, abort, send_from_directory
from flask.json.provider import DefaultJSONProvider
from flask_socketio import SocketIO, join_room

from db import doctor, queue
from db.assets import open_store
from db.root_lock import RootLock
from db.session import Database
from db.model_store import DatabaseRecordStore
from invoke_core.model_records import JsonRecordStore, ModelRegistry

from .auth import effective_token, install_auth, token_ok
from .config import ServerConfig, load_config
from .errors import register_error_handlers
from .events import QUEUE_ROOM, EventBus
from .guard import AccessGuard, AccessPolicy
from .routes import boards, canvas, health, history, images, live, models, sdapi
from .routes import config as config_routes
from .routes import queue as queue_routes
from .services import EXTENSION, Services
from .web_files import WEB_DIR, served_files
from .scale.broker import SOCKETIO_CHANNEL
from .scale.remote_queue import RemoteQueue
from .worker import QueueWorker

log = logging.getLogger(__name__)
LOCK_EXTENSION = "invoke_canvas_root_lock"


class StrictJSONProvider(DefaultJSONProvider):
    """NaN and Infinity are not JSON: a browser's JSON.parse fails on them. Values are cleaned where they
    are read; a stray one is a bug to see (an error), never invalid JSON sent to a client."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def create_app(config: ServerConfig | dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a ServerConfig, or overrides merged over file and environment."""
    cfg = config if isinstance(config, ServerConfig) else load_config(config)
    app = Flask(__name__, static_folder=None)
    app.json = StrictJSONProvider(app)
    # Uploads beyond the limit are refused before they are read (multipart overhead allowed for).
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes + 1024 * 1024
    app.json.sort_keys = False  # keep the models' field order

    token, generated = effective_token(cfg)
    app.config["INVOKE_CANVAS_TOKEN"] = token
    app.config["INVOKE_CANVAS_TOKEN_GENERATED"] = generated

    policy = AccessPolicy.from_config(cfg)
    socketio = SocketIO()
    # The app's own origins (under every loopback name) and configured ones; threading mode because torch work blocks.
    # With remote workers, events come through Redis: every web process emits what any worker publishes.
    queue_options = {"message_queue": cfg.broker_url, "channel": SOCKETIO_CHANNEL} if cfg.distributed else {}
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=policy.socketio_origin_check(), **queue_options)
    app.extensions["socketio_instance"] = socketio
    app.wsgi_app = AccessGuard(app.wsgi_app, policy)  # outside Socket.IO's middleware: it guards that too

    # RootInUse when another server has this data folder. With remote workers the folder is shared on purpose
    # (web processes and workers on many machines): the database server, not a lock file, keeps order.
    lock = RootLock.acquire(cfg.root) if not cfg.distributed else None
    try:
        _build(app, cfg, socketio, token, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return app


def _build(app: Flask, cfg: ServerConfig, socketio: SocketIO, token: str | None, lock: RootLock | None) -> None:
    app.extensions[LOCK_EXTENSION] = lock
    db = Database(cfg.root, url=cfg.database_url)
    store = open_store(cfg.root, cfg.assets_url)
    if not cfg.distributed:
        # This process is the only worker: what it left in progress was interrupted. (Remote workers' items
        # keep their leases: a web restart never fails them; an expired lease is a worker's to take back.)
        recovered = queue.recover_interrupted(db)
        if recovered:
            log.warning("queue items %s were interrupted by a stop and are now failed (retry puts them back)", recovered)
        # Files a kill -9 left without rows (between an upload's file and its row): adopted now, while nothing
        # else writes (the root is locked, the worker not started, no request served yet). With remote
        # workers writing, a file may be seconds from its row: `invoke-canvas doctor --repair` does it then.
        adopted = doctor.adopt_orphans(db, store)
        if adopted.files_imported or adopted.temp_files_removed:
            log.warning("start-up: adopted %d image file(s) without rows %s; removed %d leftover temporary file(s)",
                        len(adopted.files_imported), list(adopted.files_imported), adopted.temp_files_removed)
        for problem in adopted.errors:
            log.warning("start-up adoption: %s", problem)
    records = DatabaseRecordStore(db, import_from=JsonRecordStore(cfg.root / "models")) if db.shared else None
    services = Services(
        config=cfg,
        db=db,
        store=store,
        registry=ModelRegistry(cfg.root, records),
        events=EventBus(socketio, cfg.progress_per_second),
    )
    services.worker = RemoteQueue(services) if cfg.distributed else QueueWorker(services)
    app.extensions[EXTENSION] = services

    register_error_handlers(app)
    services.sign_url = install_auth(app, token, cfg).sign
    for module in (health, config_routes, boards, images, canvas, live, queue_routes, models, history, sdapi):
        app.register_blueprint(module.bp)

    @socketio.on("connect")
    def _connect(auth: Any = None):
        given = auth.get("token") if isinstance(auth, dict) else None  # never from the URL
        if not token_ok(token, given):
            return False  # refused at the handshake
        join_room(QUEUE_ROOM)
        return None

    @app.get("/")
    def index():
        return send_from_directory(WEB_DIR, "index.html")

    served = served_files()

    @app.get("/<path:filename>")
    def web_files(filename: str):
        if filename not in served:  # tests, npm metadata, dev pages: not the app's
            abort(404)
        return send_from_directory(WEB_DIR, filename)

    if cfg.start_worker:
        services.worker.start()
    if cfg.models_dirs:
        threading.Thread(target=_scan_models_dirs, args=(services,), name="models-dirs-scan", daemon=True).start()


def _scan_models_dirs(services: Services) -> None:
    """The configured model folders, scanned in the background at start (hashing new files takes a while)."""
    from db.session import protected_paths
    from invoke_core.errors import InvokeCoreError
    from invoke_core.model_scan import scan

    for folder in services.config.models_dirs:
        try:
            found = scan(services.registry, folder, protected_paths(services.config.root))
        except InvokeCoreError as exc:
            log.warning("models_dirs %s: %s", folder, exc)
            continue
        except Exception:  # a scan must never take the server down
            log.exception("models_dirs %s: the scan failed", folder)
            continue
        if found.installed:
            log.info("models_dirs %s: registered %s", folder, ", ".join(r.id for r in found.installed))
        for path, why in found.skipped:
            log.info("models_dirs %s: skipped %s: %s", folder, path, why)
        for record in found.missing:
            log.warning("model %s: its files are missing at %s (moved? reinstall or remove it)", record.id, record.path)


def shutdown(app: Flask) -> None:
    services: Services = app.extensions[EXTENSION]
    services.worker.stop()
    services.db.dispose()
    lock = app.extensions.pop(LOCK_EXTENSION, None)
    if lock is not None:
        lock.release()
