"""Start the real `invoke-canvas` server as a process on a free loopback port (test helper)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildProcess:
    """One of our commands as a child process, its output in a log file."""

    stop_signal = signal.SIGINT
    stop_timeout = 20.0

    def _spawn(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.log.closed:
            self.log.close()


class ServerProcess(ChildProcess):
    def __init__(
        self, root: Path, port: int | None = None, *extra: str, token: str | None = None, wait_device: bool = True,
        env: dict[str, str] | None = None, exe: str | None = None,
    ):
        self.root = root
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = exe or os.path.join(os.path.dirname(sys.executable), "invoke-canvas")
        self.wait_device = wait_device
        self._spawn(
            [exe, "--root", str(root), "--port", str(self.port), "--device", "cpu", *(["--token", token] if token else []), *extra],
            root / f"server-{self.port}.log",
            {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                health = requests.get(self.url + "/api/v1/health", headers=self.headers, timeout=2).json()
                if health.get("device") or (not self.wait_device and health.get("status") == "ok"):  # the worker's engine is up
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready: {self.log_text()[-2000:]}")

    def get(self, path: str, **kw):
        return requests.get(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw):
        return requests.post(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw):
        return requests.delete(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def wait_items(self, ids: list[int], statuses=("completed", "failed", "canceled"), timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = [self.get(f"/api/v1/queue/items/{i}").json() for i in ids]
            if all(item["status"] in statuses for item in items):
                return items
            time.sleep(0.2)
        raise TimeoutError(f"items {ids} not {statuses}: {items}\nserver log:\n{self.log_text()[-3000:]}")
