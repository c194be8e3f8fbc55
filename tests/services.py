"""Real PostgreSQL and Redis servers for the tests, started in a temporary folder on loopback ports.

Debian's packages (`postgresql`, `redis-server`; `.ci/run` installs them). PostgreSQL refuses to run as
root, so as root its commands run as the `postgres` user the package creates. Missing binaries skip the
tests that need them on a developer's machine, and fail them in CI (CI=true), where they must run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str) -> None:
    message = f"{what} is not installed (apt-get install -y postgresql redis-server)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def start_postgres(folder: Path) -> Server:
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not initdb or not postgres:
        _missing("PostgreSQL")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "pgdata"
    if as_user:
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o755)
        for parent in folder.parents:  # the postgres user must reach its folder
            if parent == Path("/") or os.stat(parent).st_mode & 0o001:
                continue
            os.chmod(parent, os.stat(parent).st_mode | 0o001)
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    port = free_port()
    log = open(folder / "postgres.log", "wb")
    process = subprocess.Popen(
        [*as_user, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(folder),
         "-c", "fsync=off", "-c", "max_connections=200"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    _wait(lambda: _port_open(port), "PostgreSQL")
    return Server(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", process)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    dsn = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def start_redis(folder: Path) -> Server:
    binary = shutil.which("redis-server")
    if not binary:
        _missing("Redis")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(folder / "redis.log", "wb")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    _wait(lambda: _port_open(port), "Redis")
    return Server(f"redis://127.0.0.1:{port}/0", process)


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def start_s3(folder: Path) -> Server:
    """A local S3-compatible endpoint: moto's standalone server (PyPI's moto[server]; no MinIO package is
    reachable here). Its URL is the endpoint (AWS_ENDPOINT_URL); S3_ENV are the credentials it accepts."""
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(folder / "s3.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    _wait(lambda: _port_open(port), "the S3 endpoint")
    return Server(f"http://127.0.0.1:{port}", process)
