"""db.doctor: rows and files that disagree, found and repaired, including after a SIGKILL mid-add."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import doctor, images
from db.assets import AssetStore
from db.models import Board, Image
from db.session import Database
from invoke_core.metadata import png_bytes

REPO = Path(__file__).resolve().parents[1]
META = {"prompt": "a salvaged image", "model": {"name": "Rescue", "hash": "ab"}, "seed": 3, "steps": 4}


def noise_png(seed: int = 0, meta: dict | None = None) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    return png_bytes(arr, meta)


@pytest.fixture
def root(tmp_path):
    return tmp_path


@pytest.fixture
def db(root, db_url):
    database = Database(root, url=db_url)
    yield database
    database.dispose()


@pytest.fixture
def store(root):
    return AssetStore(root)


def rows(db: Database) -> dict[str, Image]:
    with db.read() as s:
        return {r.id: r for r in s.scalars(select(Image))}


def assert_rows_have_whole_files(db: Database, store: AssetStore) -> None:
    for row in rows(db).values():
        data = store.path(row.file_name).read_bytes()
        assert len(data) == row.file_size
        assert hashlib.sha256(data).hexdigest() == row.content_hash


def test_clean_state_is_ok(db, store):
    assert doctor.check(db, store).ok
    images.add_image(db, store, noise_png())
    report = doctor.check(db, store)
    assert report.ok and report == doctor.DoctorReport()
    assert doctor.repair(db, store, report) == doctor.RepairResult()


def test_every_kind_of_damage_found_and_repaired(db, store):
    keep, lost, thumbless = (images.add_image(db, store, noise_png(i)) for i in range(3))
    with db.write() as s:
        board = Board(name="b", cover_image_id=lost.id)
        s.add(board)
        s.flush()
        board_id = board.id
    store.path(lost.file_name).unlink()  # a row without its file
    store.thumbnail_path(thumbless.id).unlink()  # a missing thumbnail
    stray = uuid.uuid4().hex
    (store.images_dir / f"{stray}.png").write_bytes(noise_png(9, META))  # a file without a row
    junk = uuid.uuid4().hex
    (store.images_dir / f"{junk}.png").write_bytes(b"not an image")  # ... that does not decode
    ghost = uuid.uuid4().hex
    (store.thumbnails_dir / f"{ghost}.webp").write_bytes(b"old thumb")  # a thumbnail without an image
    (store.images_dir / ".tmp-abc.part").write_bytes(b"half")  # interrupted writes
    (store.thumbnails_dir / ".tmp-def.part").write_bytes(b"half")
    (store.images_dir / "README.txt").write_text("not ours")  # left alone

    report = doctor.check(db, store)
    assert not report.ok
    assert report.rows_without_files == (lost.id,)
    assert report.files_without_rows == tuple(sorted([f"{stray}.png", f"{junk}.png"]))
    assert report.missing_thumbnails == (thumbless.id,)
    assert report.orphan_thumbnails == (ghost,)
    assert sorted(p.name for p in report.temp_files) == [".tmp-abc.part", ".tmp-def.part"]

    result = doctor.repair(db, store, report)
    assert result.rows_deleted == 1
    assert result.files_imported == (stray,)
    assert result.files_removed == (f"{junk}.png",)
    assert result.thumbnails_made == 1
    assert result.thumbnails_removed == 1
    assert result.temp_files_removed == 2
    assert result.errors == ()

    assert doctor.check(db, store).ok
    assert set(rows(db)) == {keep.id, thumbless.id, stray}
    adopted = images.get_image(db, stray)
    assert adopted.origin == "uploaded"
    assert adopted.prompt == "a salvaged image" and adopted.model_name == "Rescue"
    assert images.recall(db, stray)["seed"] == 3
    assert store.thumbnail_path(stray).exists()
    assert not (store.images_dir / f"{junk}.png").exists()
    assert (store.images_dir / "README.txt").exists()
    with db.read() as s:
        assert s.get(Board, board_id).cover_image_id is None
    assert_rows_have_whole_files(db, store)


def test_repair_rechecks_a_stale_report(db, store):
    rec = images.add_image(db, store, noise_png())
    data = store.path(rec.file_name).read_bytes()
    store.path(rec.file_name).unlink()
    report = doctor.check(db, store)
    store.path(rec.file_name).write_bytes(data)  # came back before the repair
    assert doctor.repair(db, store, report).rows_deleted == 0
    assert rec.id in rows(db)


def test_min_age_leaves_fresh_files_alone(db, store):
    stray = uuid.uuid4().hex
    (store.images_dir / f"{stray}.png").write_bytes(noise_png())
    (store.images_dir / ".tmp-x.part").write_bytes(b"in flight")
    assert doctor.check(db, store, min_age_s=60).ok
    old = time.time() - 120
    for p in (store.images_dir / f"{stray}.png", store.images_dir / ".tmp-x.part"):
        os.utime(p, (old, old))
    report = doctor.check(db, store, min_age_s=60)
    assert report.files_without_rows == (f"{stray}.png",) and len(report.temp_files) == 1


def test_deleted_then_crashed_file_is_imported_not_lost(db, store):
    # delete_images commits the row deletion before removing files; a crash in between leaves
    # the file, and the doctor keeps it (as an upload) rather than silently drop the user's image.
    rec = images.add_image(db, store, noise_png(meta=META))
    data = store.path(rec.file_name).read_bytes()
    images.delete_images(db, store, [rec.id])
    store.path(rec.file_name).write_bytes(data)
    report = doctor.check(db, store)
    assert report.files_without_rows == (rec.file_name,)
    doctor.repair(db, store, report)
    assert images.get_image(db, rec.id).prompt == META["prompt"]


def run_child(root: Path, body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        import numpy as np
        from db.assets import AssetStore
        from db.images import image_row
        from db.models import new_id, utcnow
        from db.session import Database
        from invoke_core.metadata import png_bytes

        root = Path(sys.argv[1])
        db, store = Database(root), AssetStore(root)
        data = png_bytes(np.full((12, 20, 3), 200, np.uint8), {"prompt": "killed mid-add"})
        info = store.inspect_upload(data)
        image_id = new_id()
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script, str(root)], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_sigkill_between_file_and_commit(db, store, root):
    images.add_image(db, store, noise_png())  # something committed before the crash
    child = run_child(
        root,
        """
        stored = store.write(image_id, data, info.ext)
        store.write_thumbnail(image_id, data)
        with db.write() as s:
            s.add(image_row(image_id, stored, info, {"prompt": "killed mid-add"}, origin="uploaded", created_at=utcnow()))
            s.flush()  # the row is in the open transaction, not committed
            print(image_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    image_id = child.stdout.strip()
    assert len(rows(db)) == 1 and image_id not in rows(db)
    assert_rows_have_whole_files(db, store)

    report = doctor.check(db, store)
    assert report.files_without_rows == (f"{image_id}.png",)
    assert report.rows_without_files == () and report.temp_files == ()
    result = doctor.repair(db, store, report)
    assert result.files_imported == (image_id,)
    assert images.get_image(db, image_id).prompt == "killed mid-add"
    assert doctor.check(db, store).ok
    assert_rows_have_whole_files(db, store)


def test_sigkill_in_the_middle_of_an_atomic_write(db, store, root):
    child = run_child(
        root,
        """
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = die  # killed after the temporary file is written, before the rename
        store.write(image_id, data, info.ext)
        """,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert store.image_files() == {}  # no final file, whole or partial
    report = doctor.check(db, store)
    assert len(report.temp_files) == 1 and report.files_without_rows == ()
    assert doctor.repair(db, store, report).temp_files_removed == 1
    assert doctor.check(db, store).ok
    assert rows(db) == {}
