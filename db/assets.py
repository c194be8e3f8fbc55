"""Image files under the data root: checked uploads, atomic writes, WebP thumbnails, safe paths.

Layout::

    root/images/<image id>.<png|jpg|webp>
    root/thumbnails/<image id>.webp

Every write goes to a temporary file in the target folder (name starting with `.tmp-`), is flushed
and fsynced, then renamed over the final name, and the folder is fsynced: after a crash a file is
either whole or absent, and a leftover temporary file is something `db.doctor` cleans up.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from invoke_core.atomic import atomic_write as _atomic_write

from .errors import InvalidInput, TooLarge, UnsupportedMedia

MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 64 * 1024 * 1024
THUMBNAIL_SIZE = 256
TEMP_PREFIX = ".tmp-"

# Pillow format name -> (our format name, file extension)
_FORMATS = {"PNG": ("png", "png"), "JPEG": ("jpeg", "jpg"), "WEBP": ("webp", "webp")}
EXTENSIONS = {fmt: ext for fmt, ext in _FORMATS.values()}  # "png" -> "png", "jpeg" -> "jpg", "webp" -> "webp"
ACCEPTED = "PNG, JPEG or WebP"

# The asset folders under the data root (their one source of truth; `db.session.protected_paths` uses them).
IMAGES_DIR = "images"
THUMBNAILS_DIR = "thumbnails"
DATA_DIRS = (IMAGES_DIR, THUMBNAILS_DIR)

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_FILE_RE = re.compile(r"^([0-9a-f]{32})\.(png|jpg|webp)$")


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png" | "jpeg" | "webp"
    width: int
    height: int

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.format]


@dataclass(frozen=True)
class StoredFile:
    file_name: str
    size: int
    sha256: str


def inspect_upload(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Check that `data` is a whole PNG, JPEG or WebP image within the limits; decode it fully.

    Order matters: the byte count is checked before anything is parsed, the pixel count (from the
    header) before any pixel is decoded. Pillow's own decompression-bomb limit stays in force as
    well (we never lower or raise the process-wide `Image.MAX_IMAGE_PIXELS`).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput("image data must be bytes")
    if len(data) > max_bytes:
        raise TooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if len(data) == 0:
        raise UnsupportedMedia(f"empty file: expected a {ACCEPTED} image")
    try:
        # Reads the header only. Pillow's bomb check runs here: it raises past twice its limit (we
        # report TooLarge); between its warning and error limits it warns, and our own limit
        # (lower by default) refuses the image below. No warnings filter juggling: not thread-safe.
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image has too many pixels (limit {max_pixels})") from exc
    except Exception as exc:  # UnidentifiedImageError, broken headers, oversized text chunks...
        raise UnsupportedMedia(f"not a readable image: expected a {ACCEPTED} image") from exc
    with img:
        if img.format not in _FORMATS:
            raise UnsupportedMedia(f"{img.format or 'unknown'} images are not accepted: use a {ACCEPTED} image")
        width, height = img.size
        if width <= 0 or height <= 0:
            raise UnsupportedMedia("image has no pixels")
        if width * height > max_pixels:
            raise TooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        try:
            img.load()
        except Exception as exc:  # truncated data, bad CRC, corrupt stream
            raise UnsupportedMedia(f"broken or truncated {img.format} image: {_one_line(exc)}") from exc
        return ImageInfo(_FORMATS[img.format][0], width, height)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:200]


def check_image_id(image_id: str) -> str:
    if not isinstance(image_id, str) or not _ID_RE.fullmatch(image_id):
        raise InvalidInput(f"invalid image id {image_id!r}")
    return image_id


def parse_file_name(file_name: str) -> tuple[str, str]:
    """`<32 hex>.<png|jpg|webp>` -> (image id, ext); anything else (`../`, separators...) is InvalidInput."""
    match = _FILE_RE.fullmatch(file_name) if isinstance(file_name, str) else None
    if match is None:
        raise InvalidInput(f"invalid image file name {file_name!r}")
    return match.group(1), match.group(2)


def atomic_write(path: Path, data: bytes) -> None:
    """Temporary file (named so the doctor recognises leftovers), fsync, rename, fsync the folder."""
    _atomic_write(path, data, temp_prefix=TEMP_PREFIX)


def make_thumbnail(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """WebP, longest side `size` (never enlarged), EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster for big photos
        img = ImageOps.exif_transpose(img)
        if img.mode not in ("RGB", "RGBA"):
            has_alpha = img.mode in ("LA", "PA", "La") or (img.mode == "P" and "transparency" in img.info)
            img = img.convert("RGBA" if has_alpha else "RGB")
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="WEBP", quality=80, method=2)  # method 2: a third of the time of 4, same look
        return out.getvalue()


class AssetStore:
    """The image and thumbnail folders under one data root (a folder every machine mounts, in scale-out).
    `db.s3_assets.S3AssetStore` is the same interface on an S3-compatible bucket; code outside db/ uses
    only that interface (open, read, exists, ...), and `local_path` where a file on disk serves better."""

    url = None  # where the files are, for messages: None = the data root's folders

    def __init__(self, root: Path):
        self.root = Path(root)
        self.images_dir = self.root / IMAGES_DIR
        self.thumbnails_dir = self.root / THUMBNAILS_DIR
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
        self._images_real = self.images_dir.resolve()
        self._thumbs_real = self.thumbnails_dir.resolve()

    # -- checks ------------------------------------------------------------------------------

    @staticmethod
    def inspect_upload(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> ImageInfo:
        return inspect_upload(data, max_bytes=max_bytes, max_pixels=max_pixels)

    # -- paths -------------------------------------------------------------------------------

    def path(self, file_name: str) -> Path:
        parse_file_name(file_name)
        path = self.images_dir / file_name
        if path.resolve().parent != self._images_real:
            raise InvalidInput(f"invalid image file name {file_name!r}")
        return path

    def thumbnail_path(self, image_id: str) -> Path:
        check_image_id(image_id)
        path = self.thumbnails_dir / f"{image_id}.webp"
        if path.resolve().parent != self._thumbs_real:
            raise InvalidInput(f"invalid image id {image_id!r}")
        return path

    # -- writes ------------------------------------------------------------------------------

    def write(self, image_id: str, data: bytes, ext: str) -> StoredFile:
        """Write the image file atomically (no thumbnail: see `write_thumbnail`)."""
        if ext not in ("png", "jpg", "webp"):
            raise InvalidInput(f"invalid image extension {ext!r}: use png, jpg or webp")
        file_name = f"{check_image_id(image_id)}.{ext}"
        atomic_write(self.path(file_name), bytes(data))
        return StoredFile(file_name, len(data), hashlib.sha256(data).hexdigest())

    def write_thumbnail(self, image_id: str, data: bytes) -> Path:
        path = self.thumbnail_path(image_id)
        atomic_write(path, make_thumbnail(data))
        return path

    def delete(self, file_name: str) -> None:
        """Remove the image file and its thumbnail; missing files are fine."""
        image_id, _ = parse_file_name(file_name)
        self.path(file_name).unlink(missing_ok=True)
        self.thumbnail_path(image_id).unlink(missing_ok=True)

    def delete_thumbnail(self, image_id: str) -> None:
        self.thumbnail_path(image_id).unlink(missing_ok=True)

    # -- reads -------------------------------------------------------------------------------

    def open(self, file_name: str) -> BinaryIO:
        """The image file for reading (FileNotFoundError when it is missing)."""
        return open(self.path(file_name), "rb")

    def read(self, file_name: str) -> bytes:
        return self.path(file_name).read_bytes()

    def read_thumbnail(self, image_id: str) -> bytes | None:
        try:
            return self.thumbnail_path(image_id).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, file_name: str) -> bool:
        return self.path(file_name).exists()

    def thumbnail_exists(self, image_id: str) -> bool:
        return self.thumbnail_path(image_id).exists()

    def local_path(self, file_name: str) -> Path | None:
        """The file on this machine's disk (served with sendfile and conditional requests); None for a bucket."""
        return self.path(file_name)

    def local_thumbnail_path(self, image_id: str) -> Path | None:
        return self.thumbnail_path(image_id)

    def modified_at(self, file_name: str) -> float | None:
        """Unix time of the image file's last write; None when it is missing."""
        return _mtime(self.path(file_name))

    def thumbnail_modified_at(self, image_id: str) -> float | None:
        return _mtime(self.thumbnail_path(image_id))

    def temp_modified_at(self, temp: Path) -> float | None:
        return _mtime(temp)

    def remove_temp(self, temp: Path) -> None:
        """A leftover of an interrupted write (one of `temp_files()`); a missing one is fine."""
        temp.unlink(missing_ok=True)

    # -- listings (for the doctor) -----------------------------------------------------------

    def image_files(self) -> dict[str, int]:
        """Valid image file names in the images folder -> their size in bytes."""
        found: dict[str, int] = {}
        with os.scandir(self.images_dir) as entries:
            for entry in entries:
                if _FILE_RE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    found[entry.name] = entry.stat(follow_symlinks=False).st_size
        return found

    def thumbnail_ids(self) -> set[str]:
        found: set[str] = set()
        with os.scandir(self.thumbnails_dir) as entries:
            for entry in entries:
                stem, _, ext = entry.name.partition(".")
                if ext == "webp" and _ID_RE.fullmatch(stem) and entry.is_file(follow_symlinks=False):
                    found.add(stem)
        return found

    def temp_files(self) -> list[Path]:
        """Leftovers of interrupted atomic writes, in both folders."""
        found = []
        for folder in (self.images_dir, self.thumbnails_dir):
            with os.scandir(folder) as entries:
                found += [
                    Path(e.path) for e in entries if e.name.startswith(TEMP_PREFIX) and e.is_file(follow_symlinks=False)
                ]
        return sorted(found)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def open_store(root: Path, url: str | None = None):
    """The asset store: the data root's folders, or an S3-compatible bucket (`s3://bucket/prefix`)."""
    if url is None:
        return AssetStore(root)
    from .s3_assets import S3AssetStore

    return S3AssetStore(url)
