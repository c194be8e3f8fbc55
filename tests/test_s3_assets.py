"""Asset storage on a folder and on an S3-compatible bucket (a real local endpoint: moto's server): one
interface, atomic writes, the doctor on either, and the server serving from a bucket."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from db import doctor, images
from db.assets import AssetStore, open_store
from db.errors import InvalidInput, StorageError
from db.session import Database

ID = "0" * 31 + "1"
OTHER = "0" * 31 + "2"


def png(seed: int = 0, side: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path):
    if request.param == "folder":
        return AssetStore(tmp_path)
    return open_store(tmp_path, request.getfixturevalue("s3_bucket"))


def test_write_read_list_and_delete(store):
    data = png()
    stored = store.write(ID, data, "png")
    store.write_thumbnail(ID, data)
    assert stored.file_name == f"{ID}.png" and stored.size == len(data)
    assert store.read(stored.file_name) == data
    with store.open(stored.file_name) as f:
        assert f.read() == data
    assert store.exists(stored.file_name) and store.thumbnail_exists(ID)
    assert Image.open(io.BytesIO(store.read_thumbnail(ID))).format == "WEBP"
    assert store.image_files() == {stored.file_name: len(data)}
    assert store.thumbnail_ids() == {ID}
    assert store.temp_files() == []  # nothing left of the atomic writes
    assert abs(store.modified_at(stored.file_name) - time.time()) < 120
    store.delete(stored.file_name)
    assert not store.exists(stored.file_name) and store.read_thumbnail(ID) is None
    assert store.modified_at(stored.file_name) is None
    with pytest.raises(FileNotFoundError):
        store.read(stored.file_name)
    store.delete(stored.file_name)  # missing is fine


@pytest.mark.parametrize("name", ["../x.png", f"{ID}.gif", f"sub/{ID}.png", "", f"{ID}.png/.."])
def test_names_that_leave_the_store_are_refused(store, name):
    with pytest.raises(InvalidInput):
        store.read(name)
    with pytest.raises(InvalidInput):
        store.delete(name)


def test_the_doctor_checks_and_repairs_either(store, tmp_path):
    db = Database(tmp_path / "db")
    try:
        kept = images.add_image(db, store, png(1), origin="uploaded")
        orphan = store.write(OTHER, png(2), "png")  # a file whose row never committed (a kill -9)
        store.delete_thumbnail(kept.id)  # a lost thumbnail
        report = doctor.check(db, store)
        assert report.files_without_rows == (orphan.file_name,)
        assert report.missing_thumbnails == (kept.id,)
        assert doctor.check(db, store, min_age_s=3600).files_without_rows == ()  # young files are spared
        result = doctor.repair(db, store, report)
        assert result.files_imported == (OTHER,) and result.thumbnails_made == 1 and not result.errors
        assert doctor.check(db, store).ok
    finally:
        db.dispose()


def test_a_leftover_temporary_key_is_found_and_removed(s3_bucket, tmp_path):
    store = open_store(tmp_path, s3_bucket)
    store.s3.put_object(Bucket=store.bucket, Key=f"{store.prefix}tmp/.tmp-dead-{ID}.png", Body=b"half")
    db = Database(tmp_path / "db")
    try:
        report = doctor.check(db, store)
        assert report.temp_files == (f".tmp-dead-{ID}.png",)
        assert doctor.repair(db, store, report).temp_files_removed == 1
        assert store.temp_files() == []
        with pytest.raises(InvalidInput):
            store.remove_temp(f"../images/{ID}.png")  # only temporary keys
    finally:
        db.dispose()


def test_an_unreachable_or_missing_bucket_is_one_clear_error(s3_endpoint, tmp_path):
    with pytest.raises(StorageError, match="asset bucket s3://no-such-bucket"):
        open_store(tmp_path, "s3://no-such-bucket/x")
    with pytest.raises(InvalidInput):
        open_store(tmp_path, "s3://user:secret@bucket")


def test_the_server_keeps_and_serves_images_from_a_bucket(s3_bucket, tmp_path):
    from server_process import ServerProcess

    server = ServerProcess(tmp_path, None, "--assets", s3_bucket)
    try:
        data = png(3, 32)
        uploaded = server.post("/api/v1/images", files={"file": ("a.png", data, "image/png")}).json()
        file = server.get(uploaded["url"])
        assert file.status_code == 200 and file.content == data and file.headers["Content-Type"] == "image/png"
        again = server.get(uploaded["url"], headers={"If-None-Match": file.headers["ETag"]})
        assert again.status_code == 304
        thumb = server.get(uploaded["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
        doc = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "params": {"prompt": "a harbour", "steps": 2},
               "layers": [{"id": "base", "kind": "raster", "image_id": uploaded["id"]}]}
        job = server.post("/api/v1/canvas/jobs", json={"document": doc}).json()
        (done,) = server.wait_items(job["item_ids"], timeout=120)
        assert done["status"] == "completed", done
        store = open_store(tmp_path, s3_bucket)
        assert len(store.image_files()) == 2  # the upload and the result, in the bucket
        assert not any((tmp_path / "images").glob("*.png"))  # nothing on the local disk
    finally:
        server.stop()
