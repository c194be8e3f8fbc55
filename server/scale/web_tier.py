"""The web tier with remote workers: gunicorn, one process, `web_threads` threads (Flask-SocketIO's
documented setup for its threading mode; WebSocket through simple-websocket). One process because a
Socket.IO client's polling requests must reach the process that holds its session; run more web processes
as more of these behind a proxy with sticky sessions (the browser client prefers WebSocket)."""

from __future__ import annotations

from typing import Any

from ..config import ServerConfig


def run_gunicorn(cfg: ServerConfig) -> int:
    """Serve until stopped. The app is built in gunicorn's worker process (after its fork), so its database
    pool, Redis clients and the Socket.IO message-queue listener belong to the process that uses them."""
    from gunicorn.app.base import BaseApplication

    from ..app import create_app, shutdown

    built: list[Any] = []

    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    options = {
        "bind": f"{host}:{cfg.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": cfg.web_threads,
        "timeout": 0,  # a WebSocket stays open for as long as the page does
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "worker_exit": lambda _server, _worker: [shutdown(a) for a in built],
    }

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            app = create_app(cfg)
            app.extensions["invoke_canvas"].worker.start()  # wake the workers for what waits already
            built.append(app)
            return app

    _Application().run()
    return 0
