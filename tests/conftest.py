"""Shared fixtures: a real engine on a temporary data root with the real demo models (no mocks)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import settings

from invoke_core.quiet import quiet_libraries

quiet_libraries()

# CI runs the same examples every time (a failure there is reproducible, never a new random draw); local runs
# explore new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="session")
def engine(data_root):
    from invoke_core.engine import Engine

    return Engine(root=data_root, device="cpu")


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory):
    from invoke_core.demo import build_sdxl_demo

    return build_sdxl_demo(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(scope="session")
def sdxl_inpaint_folder(tmp_path_factory):
    from invoke_core.demo import build_sdxl_demo

    return build_sdxl_demo(tmp_path_factory.mktemp("sdxl-inpaint") / "tiny-sdxl-inpaint", inpaint=True)


def rgba(h: int, w: int, seed: int = 0, alpha: int = 255) -> np.ndarray:
    """A deterministic random opaque (or uniformly translucent) RGBA image."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = alpha
    return img


# --- real PostgreSQL and Redis (tests/services.py), started once per session --------------------------------

@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    from services import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server, tmp_path_factory):
    """A database migrated to head once; each test gets a copy (CREATE DATABASE ... TEMPLATE: milliseconds)."""
    from services import create_database

    from db.session import Database

    url = create_database(pg_server.url, "invoke_template")
    Database(tmp_path_factory.mktemp("pg-template-root"), url=url).dispose()
    return "invoke_template"


_pg_count = iter(range(1, 1 << 30))


def new_pg_database(pg_server, template: str) -> str:
    import psycopg

    name = f"t{next(_pg_count)}_{os.getpid()}"
    dsn = pg_server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg_server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from services import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """None (the embedded SQLite file under the data root) or the URL of a fresh migrated PostgreSQL database:
    the queue and storage suites run on both."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("pg_server")
    return new_pg_database(server, request.getfixturevalue("pg_template"))


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A local S3 endpoint; AWS_* set for boto3 in this process (and inherited by servers the tests start)."""
    from services import S3_ENV, start_s3

    server = start_s3(tmp_path_factory.mktemp("s3"))
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": server.url})
    yield server.url
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


_bucket_count = iter(range(1, 1 << 30))


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A new empty bucket; its s3:// URL (with a prefix, as a studio might share one bucket)."""
    import boto3

    name = f"invoke-test-{next(_bucket_count)}-{os.getpid()}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/studio"
