"""Find and repair disagreements between image rows and image files.

What can go wrong, and what `repair` does about it (simple rules, chosen so that nothing of the
user's is lost):

- a row whose file is missing (the file was removed by hand or the disk lost it): the row is
  deleted (board covers pointing at it are cleared); there is nothing left to show.
- a file without a row (a crash between writing the file and committing its row, or between
  committing a deletion and removing the file): if it decodes as an image, it is imported as an
  uploaded image with its own id, its PNG metadata and its file time; if it does not, it is removed.
  A file too large for the upload limits is left alone (reported, not repaired).
- a missing thumbnail: made again from the image.
- a thumbnail without an image: removed.
- a leftover temporary file of an interrupted atomic write: removed.

Run it when no one else writes images (at start-up), or pass `min_age_s` so that files younger
than that (an upload that is between writing its file and committing its row) are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update

from .assets import AssetStore, StoredFile, parse_file_name
from .errors import StorageError, TooLarge
from .images import image_row, metadata_from_chunks
from .models import Board, Image
from .png_metadata import read_png_text
from .session import Database


@dataclass(frozen=True)
class DoctorReport:
    rows_without_files: tuple[str, ...] = ()  # image ids
    files_without_rows: tuple[str, ...] = ()  # file names in images/
    missing_thumbnails: tuple[str, ...] = ()  # image ids
    temp_files: tuple[Path | str, ...] = ()  # leftover temporary files (paths) or keys (a bucket)
    orphan_thumbnails: tuple[str, ...] = ()  # image ids of thumbnails/<id>.webp without a row

    @property
    def ok(self) -> bool:
        return not (
            self.rows_without_files
            or self.files_without_rows
            or self.missing_thumbnails
            or self.temp_files
            or self.orphan_thumbnails
        )


@dataclass(frozen=True)
class RepairResult:
    rows_deleted: int = 0
    files_imported: tuple[str, ...] = ()  # image ids
    files_removed: tuple[str, ...] = ()  # file names that did not decode
    files_skipped: tuple[str, ...] = ()  # file names left alone (too large, id already taken)
    thumbnails_made: int = 0
    thumbnails_removed: int = 0
    temp_files_removed: int = 0
    errors: tuple[str, ...] = field(default=())


def _old_enough(modified_at: float | None, min_age_s: float, now: float) -> bool:
    """Written at least `min_age_s` ago (False for a file that vanished meanwhile)."""
    if min_age_s <= 0:
        return True
    return modified_at is not None and now - modified_at >= min_age_s


def check(db: Database, store: AssetStore, *, min_age_s: float = 0.0) -> DoctorReport:
    """Compare rows with files (one query, one listing of each folder); changes nothing."""
    now = time.time()
    with db.read() as s:
        rows = {name: image_id for name, image_id in s.execute(select(Image.file_name, Image.id))}
    files = store.image_files()
    thumbs = store.thumbnail_ids()
    row_ids = set(rows.values())
    orphans = [name for name in sorted(set(files) - set(rows)) if _old_enough(store.modified_at(name), min_age_s, now)]
    return DoctorReport(
        rows_without_files=tuple(sorted(rows[name] for name in rows if name not in files)),
        files_without_rows=tuple(orphans),
        missing_thumbnails=tuple(sorted(rows[name] for name in rows if name in files and rows[name] not in thumbs)),
        temp_files=tuple(p for p in store.temp_files() if _old_enough(store.temp_modified_at(p), min_age_s, now)),
        orphan_thumbnails=tuple(
            sorted(
                i
                for i in thumbs - row_ids
                if f"{i}.png" not in files
                and f"{i}.jpg" not in files
                and f"{i}.webp" not in files
                and _old_enough(store.thumbnail_modified_at(i), min_age_s, now)
            )
        ),
    )


def repair(db: Database, store: AssetStore, report: DoctorReport, *, remove_undecodable: bool = True) -> RepairResult:
    """Fix what `report` found, re-checking each item first (the report may be stale). With
    `remove_undecodable=False` a file without a row that does not decode is left (skipped), not removed."""
    errors: list[str] = []

    # Rows without files: delete them (and covers pointing at them).
    deleted: list[str] = []
    if report.rows_without_files:
        with db.write() as s:
            for row in s.scalars(select(Image).where(Image.id.in_(report.rows_without_files))).all():
                if not store.exists(row.file_name):
                    s.execute(update(Board).where(Board.cover_image_id == row.id).values(cover_image_id=None))
                    s.execute(delete(Image).where(Image.seq == row.seq))
                    deleted.append(row.file_name)
        for file_name in deleted:  # its thumbnail, if any
            store.delete(file_name)

    # Files without rows: import what decodes, remove what does not.
    imported: list[str] = []
    removed: list[str] = []
    skipped: list[str] = []
    for file_name in report.files_without_rows:
        try:
            outcome = _adopt(db, store, file_name, remove_undecodable=remove_undecodable)
        except (OSError, StorageError) as exc:
            errors.append(f"{file_name}: {exc}")
            continue
        if outcome == "imported":
            imported.append(parse_file_name(file_name)[0])
        else:
            (removed if outcome == "removed" else skipped).append(file_name)

    # Missing thumbnails: make them again.
    thumbnails_made = 0
    if report.missing_thumbnails:
        with db.read() as s:
            names = {
                i: name
                for i, name in s.execute(
                    select(Image.id, Image.file_name).where(Image.id.in_(report.missing_thumbnails))
                )
            }
        for image_id, file_name in names.items():
            if store.thumbnail_exists(image_id):
                continue
            try:
                store.write_thumbnail(image_id, store.read(file_name))
                thumbnails_made += 1
            except (OSError, ValueError, StorageError) as exc:  # unreadable image: leave it for the user to see
                errors.append(f"thumbnail of {image_id}: {exc}")

    # Thumbnails without images, temporary files: remove them.
    thumbnails_removed = 0
    if report.orphan_thumbnails:
        with db.read() as s:
            alive = set(s.scalars(select(Image.id).where(Image.id.in_(report.orphan_thumbnails))))
        for image_id in report.orphan_thumbnails:
            if image_id not in alive:
                store.delete_thumbnail(image_id)
                thumbnails_removed += 1
    temp_removed = 0
    for temp in report.temp_files:
        try:
            store.remove_temp(temp)
            temp_removed += 1
        except (OSError, StorageError) as exc:
            errors.append(f"{getattr(temp, 'name', temp)}: {exc}")

    return RepairResult(
        rows_deleted=len(deleted),
        files_imported=tuple(imported),
        files_removed=tuple(removed),
        files_skipped=tuple(skipped),
        thumbnails_made=thumbnails_made,
        thumbnails_removed=thumbnails_removed,
        temp_files_removed=temp_removed,
        errors=tuple(errors),
    )


def adopt_orphans(db: Database, store: AssetStore) -> RepairResult:
    """The start-up part of `repair`, for files older than the last stop (a kill -9 between writing an
    image file and committing its row, or mid atomic write): image files without rows that decode are
    imported (with their PNG metadata and file time), and leftover temporary files are removed.

    Only safe while no one else writes images: call it at start, before the server serves requests
    and before the worker starts. It deletes nothing the user may want: rows without files, files
    that do not decode and files too large are left for `check` to report (`doctor --repair` decides).
    An imported image gets its thumbnail.
    """
    found = check(db, store)
    only = DoctorReport(files_without_rows=found.files_without_rows, temp_files=found.temp_files)
    return repair(db, store, only, remove_undecodable=False)


def _adopt(db: Database, store: AssetStore, file_name: str, *, remove_undecodable: bool = True) -> str:
    """Import one file without a row: "imported", "removed" (does not decode) or "skipped"."""
    image_id, _ext = parse_file_name(file_name)
    try:
        data = store.read(file_name)
    except FileNotFoundError:
        return "skipped"
    mtime = store.modified_at(file_name)
    if mtime is None:
        return "skipped"
    try:
        info = store.inspect_upload(data)
    except TooLarge:
        return "skipped"
    except StorageError:  # UnsupportedMedia: not an image, or a broken one
        if not remove_undecodable:
            return "skipped"
        store.delete(file_name)
        return "removed"
    metadata = metadata_from_chunks(read_png_text(data)) if info.format == "png" else {}
    stored = StoredFile(file_name, len(data), hashlib.sha256(data).hexdigest())
    created_at = datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)
    with db.write() as s:
        taken = s.scalar(select(Image.seq).where((Image.id == image_id) | (Image.file_name == file_name)))
        if taken is not None:
            return "skipped"
        s.add(image_row(image_id, stored, info, metadata, origin="uploaded", created_at=created_at))
    with contextlib.suppress(OSError, ValueError):  # without a thumbnail the next check reports it
        store.write_thumbnail(image_id, data)
    return "imported"
