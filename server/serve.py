"""Run the server. The single-user default: Flask-SocketIO on Werkzeug's threading server (WebSocket via
simple-websocket). With remote workers (a broker): the production tier Flask-SocketIO documents for
threading mode, gunicorn with one process of many threads (simple-websocket again); more web processes
are more of these behind a proxy, all emitting through the Redis message queue."""

from __future__ import annotations

import logging
import socket
import sys

from werkzeug.serving import WSGIRequestHandler

from db.root_lock import RootInUse

from .app import create_app, shutdown
from .config import ServerConfig, load_config


class NoDelayRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with Nagle's algorithm off: a job's last events (progress, image, status) go out
    back to back as small WebSocket frames, and Nagle held each one behind the ACK of the one before
    (the client delays its ACKs): ~9 ms from the status event to a client, ~1 ms without."""

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # not a TCP socket
            pass


def _redacted(url: str) -> str:
    """A URL without its password, for printing."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


class _DeveloperNotices(logging.Filter):
    """Notices meant for developers (Werkzeug's "production deployment" advice: this is a local app, not a
    public site) go to debug, where someone debugging still sees them."""

    NOTICES = ("Werkzeug appears to be used in a production deployment",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(self.NOTICES):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").addFilter(_DeveloperNotices())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines name each migration step


def start_banner(cfg: ServerConfig, registry) -> list[str]:
    """What the console says at start: where, which data folder, and whether only the demo models are in."""
    lines = [f"Invoke Canvas on {cfg.origin}", f"  data folder: {cfg.root}"]
    if all(record.builtin for record in registry.list()):
        lines.append("  models: only the built-in demos (random weights: they paint noise). Install a real one with")
        lines.append("    invoke-canvas models install /path/to/model.safetensors")
    return lines


def serve(overrides: dict) -> int:
    configure_logging()
    cfg = load_config(overrides)
    if cfg.distributed:
        from .scale.web_tier import run_gunicorn

        print(f"Invoke Canvas on {cfg.origin}  (data: {cfg.root}; jobs on workers via {_redacted(cfg.broker_url)})", flush=True)
        return run_gunicorn(cfg)
    try:
        app = create_app(cfg)
    except RootInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg: ServerConfig = app.extensions["invoke_canvas"].config
    socketio = app.extensions["socketio_instance"]
    token = app.config["INVOKE_CANVAS_TOKEN"]
    print("\n".join(start_banner(cfg, app.extensions["invoke_canvas"].registry)), flush=True)
    if app.config["INVOKE_CANVAS_TOKEN_GENERATED"]:
        print(f"Listening beyond this machine: the access token is {token}", flush=True)
        print(f"Open {cfg.origin}/?token={token}", flush=True)
    import flask.cli

    flask.cli.show_server_banner = lambda *args, **kwargs: None  # Flask's own " * Serving Flask app" lines
    try:
        # A local app, not a public site: the Werkzeug server with WebSocket support is enough.
        socketio.run(
            app, host=cfg.host, port=cfg.port, allow_unsafe_werkzeug=True, use_reloader=False, log_output=False,
            request_handler=NoDelayRequestHandler,
        )
    except OSError as exc:
        print(f"error: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        shutdown(app)
    return 0
