"""Checks that run before a model file is opened: only regular files, never a protected path.

Why: opening a FIFO blocks forever, a device or socket is not a model, and opening then closing
any descriptor of an SQLite database file drops every POSIX lock the process holds on it (SQLite's
"How To Corrupt An SQLite Database File", 2.2). So a model source is refused, before anything is
opened, when it is, lies inside, or holds one of the `forbidden` paths (given by the caller: the
data folder's database files and asset folders), compared on both the path as given and its
resolved form (symlinks followed), and by inode for forbidden files (hard links).

Everything here uses stat and readlink only (neither opens a file); files are then opened with
O_NONBLOCK and checked again with fstat, so a FIFO swapped in after the check cannot block.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import ModelInstallError

CONFIG_MAX_BYTES = 16 * 1024 * 1024  # a JSON config is a few kB; refuse anything absurd before reading it


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class Forbidden:
    """Paths that a model install must never read (nor a folder that holds them)."""

    def __init__(self, paths: Iterable[os.PathLike | str] = ()):
        self.paths: tuple[str, ...] = ()
        self._inodes: set[tuple[int, int]] = set()
        forms: list[str] = []
        for path in paths:
            for form in _forms(path):
                if form not in forms:
                    forms.append(form)
            try:
                st = os.stat(path)  # stat does not open
            except OSError:
                continue
            self._inodes.add((st.st_dev, st.st_ino))
        self.paths = tuple(forms)

    def __bool__(self) -> bool:
        return bool(self.paths)

    def check(self, path: os.PathLike | str, shown: os.PathLike | str | None = None) -> None:
        """ModelInstallError if `path` is, is inside, or holds a forbidden path (symlinks resolved)."""
        if not self.paths:
            return
        for candidate in _forms(path):
            for protected in self.paths:
                common = _common(candidate, protected)
                if common == protected:
                    raise _refused(shown or path, "is inside" if candidate != protected else "is", protected)
                if common == candidate:
                    raise _refused(shown or path, "holds", protected)
        if self._inodes:
            try:
                st = os.stat(path)
            except OSError:
                return
            if (st.st_dev, st.st_ino) in self._inodes:
                raise _refused(shown or path, "is a link to", "a protected file")


def as_forbidden(forbidden: Forbidden | Sequence[os.PathLike | str] | None) -> Forbidden:
    return forbidden if isinstance(forbidden, Forbidden) else Forbidden(forbidden or ())


def _plain(path: os.PathLike | str) -> str:
    text = os.fspath(path)
    if "\x00" in str(text):
        raise ModelInstallError("Refusing the path: it contains a NUL character")
    return text


def _forms(path: os.PathLike | str) -> list[str]:
    path = _plain(path)
    given = os.path.normcase(os.path.abspath(os.fspath(path)))
    real = os.path.normcase(os.path.realpath(os.fspath(path)))
    return [given] if real == given else [given, real]


def _common(a: str, b: str) -> str | None:
    try:
        return os.path.commonpath([a, b])
    except ValueError:  # different drives
        return None


def _refused(path: os.PathLike | str, relation: str, protected: str) -> ModelInstallError:
    return ModelInstallError(
        f"Refusing {path}: it {relation} {protected}, part of the data folder's database or image files, which a "
        "model install must not read (reading the database's files from the server can corrupt it); "
        "install models from a folder outside the data folder's database and image folders"
    )


def check_source(path: os.PathLike | str, forbidden: Forbidden) -> str:
    """"file" or "dir" for a model source; ModelInstallError if forbidden, missing or not a regular file.
    Opens nothing."""
    _plain(path)
    forbidden.check(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ModelInstallError(f"{path} is a broken symbolic link (its target {os.path.realpath(path)} is missing)") from None
        raise ModelInstallError(f"no file or folder at {path}") from None
    except OSError as exc:
        raise ModelInstallError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise ModelInstallError(f"Refusing {path}: it is {_kind(st.st_mode)}, not a regular file or a folder")


def check_file(path: os.PathLike | str, forbidden: Forbidden) -> os.stat_result:
    """A regular file (after symlinks) that is not forbidden, else ModelInstallError. Opens nothing."""
    if check_source(path, forbidden) != "file":
        raise ModelInstallError(f"Refusing {path}: it is a folder, not a regular file")
    return os.stat(path)


def check_tree(folder: os.PathLike | str, forbidden: Forbidden) -> None:
    """Every entry of `folder`, through symlinked sub-folders too (each real folder once), must be a
    regular file or a folder and not forbidden: the whole folder is what gets hashed and loaded."""
    root = Path(folder)
    check_source(root, forbidden)
    seen = {os.path.realpath(root)}
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=errors.append):
        if errors:
            break
        keep = []
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            forbidden.check(sub)
            real = os.path.realpath(sub)
            if real not in seen:  # a symlink loop, or two links to one folder: walk it once
                seen.add(real)
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            check_file(os.path.join(dirpath, name), forbidden)
    if errors:
        exc = errors[0]
        raise ModelInstallError(f"Cannot read {exc.filename or folder}: {exc.strerror or exc}")


def open_checked(path: os.PathLike | str, forbidden: Forbidden, max_bytes: int | None = None):
    """Open a checked regular file for reading (binary). O_NONBLOCK, then fstat: never blocks on a FIFO."""
    check_file(path, forbidden)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ModelInstallError(f"Cannot read {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelInstallError(f"Refusing {path}: it is {_kind(st.st_mode)}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ModelInstallError(f"Refusing {path}: {st.st_size} bytes is too large for a config file (limit {max_bytes})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def iter_files(folder: Path) -> Iterator[Path]:
    """Non-folder entries under `folder` (symlinked sub-folders not entered), sorted: what is hashed."""
    return iter(sorted(p for p in folder.rglob("*") if not p.is_dir()))
