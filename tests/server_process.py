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


class ServerProcess:
    def __init__(
        self, root: Path, port: int | None = None, *extra: str, token: str | None = None, wait_device: bool = True,
        env: dict[str, str] | None = None,
    ):
        self.root = root
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = os.path.join(os.path.dirname(sys.executable), "invoke-canvas")
        self.log = open(root / f"server-{self.port}.log", "ab")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.wait_device = wait_device
        self.proc = subprocess.Popen(
            [exe, "--root", str(root), "--port", str(self.port), "--device", "cpu", *(["--token", token] if token else []), *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
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

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.root / f"server-{self.port}.log").read_text(errors="replace")

    def get(self, path: str, **kw):
        return requests.get(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw):
        return requests.post(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw):
        return requests.delete(self.url + path, timeout=30, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.log.closed:
            self.log.close()

    def wait_items(self, ids: list[int], statuses=("completed", "failed", "canceled"), timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = [self.get(f"/api/v1/queue/items/{i}").json() for i in ids]
            if all(item["status"] in statuses for item in items):
                return items
            time.sleep(0.2)
        raise TimeoutError(f"items {ids} not {statuses}: {items}\nserver log:\n{self.log_text()[-3000:]}")
