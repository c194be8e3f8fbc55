"""The database: SQLite under the data root (the default), or a PostgreSQL server by URL (scale-out).

SQLite: reads use ordinary (deferred) transactions so they never wait on writers (WAL); writes start
with BEGIN IMMEDIATE so two writers queue on the busy timeout instead of failing on a lock upgrade.
PostgreSQL: one pool, READ COMMITTED; the queue claims rows with SELECT ... FOR UPDATE SKIP LOCKED.
One session per request or job, never shared across threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DB_FILE = "invoke_canvas.db"
# The only URLs --database-url takes: SQLite is the embedded default under the data root, no URL needed.
URL_SCHEMES = ("postgresql+psycopg://", "postgresql://")
# SQLite's companion files of DB_FILE (WAL mode uses the first two; the rollback journal the third).
DB_COMPANIONS = ("-wal", "-shm", "-journal")
BUSY_TIMEOUT_MS = 30_000


def protected_paths(root: Path) -> list[Path]:
    """What under the data root must never be read by anything but SQLite and `db.assets`: the database
    file and its companions (opening and closing any of them from this process drops its POSIX locks:
    "How To Corrupt An SQLite Database File", 2.2), and the asset folders. Pass it as `forbidden` to
    `invoke_core.model_install.install_model`, which refuses a source that is, lies inside or holds one."""
    from .assets import DATA_DIRS

    root = Path(root)
    return [root / DB_FILE, *(root / (DB_FILE + suffix) for suffix in DB_COMPANIONS), *(root / d for d in DATA_DIRS)]


def _engine(path: Path, begin: str, read_only: bool = False) -> Engine:
    # Read-only connections never checkpoint or delete the WAL when they close: safe beside a running server.
    url = f"sqlite:///file:{quote(path.as_posix())}?mode=ro&uri=true" if read_only else f"sqlite:///{path}"
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed data
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql(begin)

    return engine


class DatabaseUrlError(ValueError):
    """A --database-url this app cannot use; the message says which it takes."""


def check_url(url: str) -> str:
    """The SQLAlchemy URL for PostgreSQL through psycopg 3 (`postgresql://` is taken as that)."""
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
        raise DatabaseUrlError(
            "database URL must start with postgresql+psycopg:// (SQLite is the default under the data root: give no URL)"
        )
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def _server_engine(url: str) -> Engine:
    # pre_ping: a connection the server dropped (restart, idle timeout) is replaced, not handed to a job.
    return create_engine(check_url(url), pool_size=8, max_overflow=16, pool_pre_ping=True)


class Database:
    """The engines and session factories: one SQLite file under `root`, or a PostgreSQL server (`url`)."""

    def __init__(self, root: Path, *, url: str | None = None, upgrade: bool = True, read_only: bool = False):
        """`read_only`: look, change nothing (no migration, no writes): for a database a server is using."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.read_only = read_only
        if url is not None:
            self.path = None
            self.read_engine = self.write_engine = _server_engine(url)
        else:
            self.path = self.root / DB_FILE
            self.read_engine = _engine(self.path, "BEGIN", read_only)
            self.write_engine = _engine(self.path, "BEGIN IMMEDIATE", read_only)
        self.dialect = self.write_engine.dialect.name
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        if upgrade and not read_only:
            from .migrate import upgrade_to_head

            upgrade_to_head(self.write_engine)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @property
    def shared(self) -> bool:
        """A database server that other processes and machines use too (not the embedded SQLite file)."""
        return self.url is not None

    def dispose(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()
