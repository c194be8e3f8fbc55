"""Run the server: Flask-SocketIO on its threading server (WebSocket via simple-websocket)."""

from __future__ import annotations

import logging
import sys

from db.root_lock import RootInUse

from .app import create_app, shutdown
from .config import ServerConfig


def serve(overrides: dict) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        app = create_app(overrides)
    except RootInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg: ServerConfig = app.extensions["invoke_canvas"].config
    socketio = app.extensions["socketio_instance"]
    token = app.config["INVOKE_CANVAS_TOKEN"]
    print(f"Invoke Canvas on {cfg.origin}  (data: {cfg.root})", flush=True)
    if app.config["INVOKE_CANVAS_TOKEN_GENERATED"]:
        print(f"Listening beyond this machine: the access token is {token}", flush=True)
        print(f"Open {cfg.origin}/?token={token}", flush=True)
    try:
        # A local app, not a public site: the Werkzeug server with WebSocket support is enough.
        socketio.run(app, host=cfg.host, port=cfg.port, allow_unsafe_werkzeug=True, use_reloader=False, log_output=False)
    except OSError as exc:
        print(f"error: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        shutdown(app)
    return 0
