"""SQLAlchemy 2.0 models: boards, images, generations, queue items, saved canvases and their versions.

Image bytes live in files under the data root (db/assets.py); rows hold names, sizes, hashes, metadata.
Timestamps are UTC. Ids are uuid4 hex strings (safe in URLs and file names), except queue items,
whose integer id also gives their arrival order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IMAGE_ORIGINS = ("generated", "uploaded", "canvas")
IMAGE_CATEGORIES = ("general", "mask", "control", "layer", "live")
# Never listed, counted or searched (the gallery's and boards' views): a live-painting render until it is kept
# (db/images.keep_live), when it becomes "general". Superseded ones are deleted (server/live.py).
UNLISTED_CATEGORIES = ("live",)
QUEUE_STATUSES = ("pending", "in_progress", "completed", "failed", "canceled")
# How one run of an item ended: a queue status (failed with error type WorkerLost: its worker stopped
# sending heartbeats), or "requeued" (its worker stopped cleanly and gave it back).
ATTEMPT_STATUSES = ("in_progress", "completed", "failed", "canceled", "requeued")
WORKER_NAME_MAX = 200
LANE_KEY_MAX = 64  # a superseding lane's key (live painting: a browser tab's)
NAME_MAX = 200


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    # Naive UTC: SQLite keeps no zone, and naive values compare and sort consistently.
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime()}


class Board(Base):
    __tablename__ = "boards"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    # Deleting a parent deletes its sub-boards (the service decides what happens to their images first).
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), index=True)
    # No foreign key: boards and images would reference each other; the service clears it on delete.
    cover_image_id: Mapped[str | None] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    children: Mapped[list[Board]] = relationship(back_populates="parent", passive_deletes=True)
    parent: Mapped[Board | None] = relationship(back_populates="children", remote_side=[id])


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # the whole request, layers by asset id
    canvas_id: Mapped[str | None] = mapped_column(ForeignKey("canvases.id", ondelete="SET NULL"), index=True)
    canvas_version: Mapped[int | None] = mapped_column(Integer)
    board_id: Mapped[str | None] = mapped_column(ForeignKey("boards.id", ondelete="SET NULL"), index=True)
    model_id: Mapped[str | None] = mapped_column(String(200))
    model_name: Mapped[str | None] = mapped_column(String(NAME_MAX))
    model_hash: Mapped[str | None] = mapped_column(String(64))
    # Seeds are unsigned 32-bit: beyond PostgreSQL's INTEGER (SQLite's INTEGER holds 64 bits already).
    seed: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    mode: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)

    images: Mapped[list[Image]] = relationship(back_populates="generation")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        # Keyset pagination: newest/oldest first, overall and per board.
        Index("ix_images_created_at_id", "created_at", "id"),
        Index("ix_images_board_id_created_at_id", "board_id", "created_at", "id"),
    )

    # An explicit integer key: the full-text index refers to rows by it, and SQLite may renumber an
    # implicit rowid on VACUUM. The public id is the uuid.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    file_name: Mapped[str] = mapped_column(String(64), unique=True)
    board_id: Mapped[str | None] = mapped_column(ForeignKey("boards.id", ondelete="SET NULL"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    file_size: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    origin: Mapped[str] = mapped_column(String(16), default="generated", index=True)
    category: Mapped[str] = mapped_column(String(16), default="general")
    starred: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Denormalised from the metadata for filters and the full-text index.
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    model_name: Mapped[str | None] = mapped_column(String(NAME_MAX), index=True)
    # From the generation's request (db/search_text.py), for the full-text index only; never in the API.
    region_prompts: Mapped[str] = mapped_column(Text, default="", server_default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    generation_id: Mapped[str | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"), index=True)

    generation: Mapped[Generation | None] = relationship(back_populates="images")


class QueueItem(Base):
    __tablename__ = "queue_items"
    __table_args__ = (Index("ix_queue_items_status_priority_id", "status", "priority", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[str] = mapped_column(String(32), default=new_id, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # index within its batch
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Runs since it was queued (or retried), the worker that holds (or last held) it, and that worker's
    # last sign of life: a live lease is never taken away; an expired one puts the item back (db/queue.py).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(WORKER_NAME_MAX))
    heartbeat_at: Mapped[datetime | None]
    # Whose lane an item of a superseding lane is in (live painting: one per browser tab, db/queue.py
    # `enqueue_superseding`); None: the lane's shared one, and every other item.
    lane_key: Mapped[str | None] = mapped_column(String(LANE_KEY_MAX))

    generation: Mapped[Generation] = relationship()


class QueueAttempt(Base):
    """One run of a queue item on one worker, and how it ended."""

    __tablename__ = "queue_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("queue_items.id", ondelete="CASCADE"), index=True)
    worker: Mapped[str] = mapped_column(String(WORKER_NAME_MAX))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)


class QueueSetting(Base):
    """Queue-wide switches every worker reads (today: `paused`), as text values."""

    __tablename__ = "queue_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelRow(Base):
    """An installed model's record (invoke_core.model_records.ModelRecord as JSON), in the shared database
    so every worker and web process sees the same registry (db/model_store.py)."""

    __tablename__ = "model_records"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class ModelOptionsRow(Base):
    """A model's options (keep loaded, weight storage), also for the built-in demos."""

    __tablename__ = "model_options"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)


class Canvas(Base):
    """A saved canvas document; its content lives in versions (autosaves capped, named saves kept)."""

    __tablename__ = "canvases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    current_version: Mapped[int] = mapped_column(Integer, default=0)

    versions: Mapped[list[CanvasVersion]] = relationship(
        back_populates="canvas", cascade="all, delete-orphan", passive_deletes=True, order_by="CanvasVersion.version"
    )


class CanvasVersion(Base):
    __tablename__ = "canvas_versions"
    __table_args__ = (UniqueConstraint("canvas_id", "version", name="uq_canvas_versions_canvas_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    canvas_id: Mapped[str] = mapped_column(ForeignKey("canvases.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    autosave: Mapped[bool] = mapped_column(Boolean, default=True)
    # bbox, layers (each referencing an image asset id), generation params, staging area
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    canvas: Mapped[Canvas] = relationship(back_populates="versions")
