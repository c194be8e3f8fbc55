"""A scale-out cluster for the tests: real PostgreSQL and Redis (tests/services.py), one web process
(`invoke-canvas --database-url ... --broker ...`, gunicorn) and `invoke-canvas worker` processes, all on one
shared data folder, each worker limited to one torch thread."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from server_process import ChildProcess, ServerProcess, free_port

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerProcess(ChildProcess):
    stop_signal = signal.SIGTERM  # Celery's warm shutdown: the running job finishes
    stop_timeout = 60.0

    def __init__(self, root: Path, name: str, database_url: str, broker_url: str, lease: float = 3.0):
        self.root, self.name = root, name
        exe = os.path.join(os.path.dirname(sys.executable), "invoke-canvas")
        self._spawn(
            [exe, "worker", "--root", str(root), "--device", "cpu", "--name", name, "--database-url", database_url,
             "--broker", broker_url, "--lease", str(lease)],
            root / f"worker-{name}.log",
            {**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD},
        )


class Cluster:
    def __init__(self, root: Path, database_url: str, broker_url: str, lease: float = 3.0):
        self.root, self.database_url, self.broker_url, self.lease = root, database_url, broker_url, lease
        self.port = free_port()
        self.workers: dict[str, WorkerProcess] = {}
        self.web: ServerProcess | None = None
        self.extra_webs: list[ServerProcess] = []

    def start_web(self) -> ServerProcess:
        self.web = ServerProcess(
            self.root, self.port, "--database-url", self.database_url, "--broker", self.broker_url, wait_device=False
        )
        return self.web

    def start_extra_web(self) -> ServerProcess:
        """Another web process on its own port (as behind a proxy), on the same database and broker."""
        web = ServerProcess(self.root, None, "--database-url", self.database_url, "--broker", self.broker_url, wait_device=False)
        self.extra_webs.append(web)
        return web

    def start_worker(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(self.root, name, self.database_url, self.broker_url, self.lease)
        self.workers[name] = worker
        return worker

    def wait_workers(self, names, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {w["name"] for w in self.web.get("/api/v1/queue/workers").json()}
            if set(names) <= live:
                return
            for name in names:
                proc = self.workers[name].proc
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {name} exited: {self.workers[name].log_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"workers {names} not live: {[w.log_text()[-1500:] for w in self.workers.values()]}")

    def logs(self) -> str:
        parts = [f"--- web\n{self.web.log_text()[-3000:]}"] if self.web else []
        parts += [f"--- {name}\n{w.log_text()[-3000:]}" for name, w in self.workers.items()]
        return "\n".join(parts)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for web in [self.web, *self.extra_webs]:
            if web is not None:
                web.stop()
