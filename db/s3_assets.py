"""Image files in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...), for workers on machines that share
no folder: the same interface as `db.assets.AssetStore`, through boto3.

    s3://bucket/prefix/images/<image id>.<png|jpg|webp>
    s3://bucket/prefix/thumbnails/<image id>.webp
    s3://bucket/prefix/tmp/.tmp-<random>-<final name>     (only while a write is in flight)

A write goes to a temporary key, is copied to its final key and the temporary key deleted: the final key
holds a whole file or nothing, before the row that names it commits (db.images.add_image). A leftover
temporary key is what `db.doctor` reports and removes. The endpoint and credentials come from boto3's
usual sources (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ~/.aws), never from the URL.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterator
from typing import Any, BinaryIO

from .assets import (
    IMAGES_DIR,
    MAX_BYTES,
    MAX_PIXELS,
    TEMP_PREFIX,
    THUMBNAILS_DIR,
    ImageInfo,
    StoredFile,
    check_image_id,
    inspect_upload,
    make_thumbnail,
    parse_file_name,
)
from .errors import InvalidInput, StorageError

SCHEME = "s3://"
TEMP_DIR = "tmp"


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise InvalidInput("asset storage must be s3://bucket[/prefix] (or no URL: the data folder)")
    bucket, _, prefix = url[len(SCHEME):].partition("/")
    if not bucket or "@" in bucket or ":" in bucket:
        raise InvalidInput("asset storage s3://bucket[/prefix]: name the bucket; credentials go in the environment")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3AssetStore:
    def __init__(self, url: str, client: Any = None):
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.s3 = client
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # unreachable endpoint, no such bucket, no access
            raise StorageError(f"asset bucket {url}: {_reason(exc)}") from None

    # -- keys --------------------------------------------------------------------------------

    def _image_key(self, file_name: str) -> str:
        parse_file_name(file_name)  # InvalidInput for anything but <32 hex>.<ext>
        return f"{self.prefix}{IMAGES_DIR}/{file_name}"

    def _thumbnail_key(self, image_id: str) -> str:
        return f"{self.prefix}{THUMBNAILS_DIR}/{check_image_id(image_id)}.webp"

    # -- checks ------------------------------------------------------------------------------

    @staticmethod
    def inspect_upload(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> ImageInfo:
        return inspect_upload(data, max_bytes=max_bytes, max_pixels=max_pixels)

    # -- writes ------------------------------------------------------------------------------

    def _put_atomically(self, key: str, data: bytes, content_type: str) -> None:
        temp = f"{self.prefix}{TEMP_DIR}/{TEMP_PREFIX}{secrets.token_hex(8)}-{key.rsplit('/', 1)[1]}"
        try:
            self.s3.put_object(Bucket=self.bucket, Key=temp, Body=data, ContentType=content_type,
                               ContentMD5=_md5(data))
            self.s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": temp},
                                ContentType=content_type, MetadataDirective="REPLACE")
        except Exception as exc:
            raise StorageError(f"could not write {key} to {self.url}: {_reason(exc)}") from None
        finally:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=temp)
            except Exception:  # left for the doctor, as a temporary file would be
                pass

    def write(self, image_id: str, data: bytes, ext: str) -> StoredFile:
        if ext not in ("png", "jpg", "webp"):
            raise InvalidInput(f"invalid image extension {ext!r}: use png, jpg or webp")
        file_name = f"{check_image_id(image_id)}.{ext}"
        data = bytes(data)
        mime = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}[ext]
        self._put_atomically(self._image_key(file_name), data, mime)
        return StoredFile(file_name, len(data), hashlib.sha256(data).hexdigest())

    def write_thumbnail(self, image_id: str, data: bytes) -> None:
        self._put_atomically(self._thumbnail_key(image_id), make_thumbnail(data), "image/webp")

    def delete(self, file_name: str) -> None:
        image_id, _ = parse_file_name(file_name)
        self._delete(self._image_key(file_name))
        self._delete(self._thumbnail_key(image_id))

    def delete_thumbnail(self, image_id: str) -> None:
        self._delete(self._thumbnail_key(image_id))

    def _delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)  # a missing key is not an error in S3
        except Exception as exc:
            raise StorageError(f"could not delete {key} from {self.url}: {_reason(exc)}") from None

    # -- reads -------------------------------------------------------------------------------

    def _get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise StorageError(f"could not read {key} from {self.url}: {_reason(exc)}") from None

    def open(self, file_name: str) -> BinaryIO:
        return io.BytesIO(self._get(self._image_key(file_name)))

    def read(self, file_name: str) -> bytes:
        return self._get(self._image_key(file_name))

    def read_thumbnail(self, image_id: str) -> bytes | None:
        try:
            return self._get(self._thumbnail_key(image_id))
        except FileNotFoundError:
            return None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return None
            raise StorageError(f"could not look up {key} in {self.url}: {_reason(exc)}") from None

    def exists(self, file_name: str) -> bool:
        return self._head(self._image_key(file_name)) is not None

    def thumbnail_exists(self, image_id: str) -> bool:
        return self._head(self._thumbnail_key(image_id)) is not None

    def local_path(self, file_name: str) -> None:
        return None

    def local_thumbnail_path(self, image_id: str) -> None:
        return None

    def modified_at(self, file_name: str) -> float | None:
        head = self._head(self._image_key(file_name))
        return head["LastModified"].timestamp() if head else None

    def thumbnail_modified_at(self, image_id: str) -> float | None:
        head = self._head(self._thumbnail_key(image_id))
        return head["LastModified"].timestamp() if head else None

    def temp_modified_at(self, temp: str) -> float | None:
        head = self._head(self._temp_key(temp))
        return head["LastModified"].timestamp() if head else None

    # -- listings (for the doctor) -----------------------------------------------------------

    def _list(self, folder: str) -> Iterator[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{folder}/"):
                yield from page.get("Contents", ())
        except Exception as exc:
            raise StorageError(f"could not list {self.url}: {_reason(exc)}") from None

    def image_files(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for obj in self._list(IMAGES_DIR):
            name = obj["Key"].rsplit("/", 1)[1]
            try:
                parse_file_name(name)
            except InvalidInput:
                continue
            found[name] = obj["Size"]
        return found

    def thumbnail_ids(self) -> set[str]:
        found: set[str] = set()
        for obj in self._list(THUMBNAILS_DIR):
            stem, _, ext = obj["Key"].rsplit("/", 1)[1].partition(".")
            if ext == "webp":
                try:
                    found.add(check_image_id(stem))
                except InvalidInput:
                    continue
        return found

    def temp_files(self) -> list[str]:
        """Leftover temporary keys (their names under tmp/)."""
        return sorted(
            obj["Key"].rsplit("/", 1)[1] for obj in self._list(TEMP_DIR) if obj["Key"].rsplit("/", 1)[1].startswith(TEMP_PREFIX)
        )

    def _temp_key(self, temp: str) -> str:
        if not isinstance(temp, str) or not temp.startswith(TEMP_PREFIX) or "/" in temp:
            raise InvalidInput(f"not a temporary file name: {temp!r}")
        return f"{self.prefix}{TEMP_DIR}/{temp}"

    def remove_temp(self, temp: str) -> None:
        self._delete(self._temp_key(temp))


def _md5(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    text = error.get("Message") or error.get("Code") or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:200]
