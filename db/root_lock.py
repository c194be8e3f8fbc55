"""One server per data root, and maintenance that knows when a server is running (db/doctor via the CLI).

The server holds an exclusive lock on `<root>/invoke_canvas.lock` for its whole life. It is a file of its
own, never the database: SQLite's POSIX locks on the database belong to the process, and closing *any*
descriptor of the database file drops them all (SQLite's "How To Corrupt An SQLite Database File", 2.2),
so nothing here ever opens the database's files. `flock` locks belong to the open file instead, so another
open and close of the lock file cannot release this one; the kernel drops it when the process dies.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCK_FILE = "invoke_canvas.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; msvcrt's byte-range lock serves the same purpose
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class RootInUse(RuntimeError):
    """Another process (a server, or the doctor repairing) holds the data root's lock; `pid` is the holder's."""

    def __init__(self, root: Path, pid: int | None):
        self.root = root
        self.pid = pid
        who = f" (process {pid})" if pid else ""
        super().__init__(f"another invoke-canvas server or doctor{who} is using the data folder {root}")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NLCK, 1)
    except OSError:
        return False
    return True


def _pid_in(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RootLock:
    """Held for a server's life (and a repairing doctor's run): `RootLock.acquire(root)` ... `lock.release()`."""

    def __init__(self, root: Path, fd: int):
        self.root = root
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, root: Path) -> RootLock:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        path = root / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise RootInUse(root, _pid_in(path))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(root, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor of this open file releases the flock
            self._fd = None
