"""full-text search covers region prompts

Adds images.region_prompts (the region prompts and negative prompts of the image's generation), fills it
for existing images from their generations' stored requests, and rebuilds the FTS5 index and its
triggers to include it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

# The one definition of the region text, shared with db.images.add_image: a later change to it comes
# with its own migration that backfills again.
from db.search_text import region_prompts_text

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BATCH = 500  # images backfilled per round trip (their requests are held in memory meanwhile)
_TRIGGERS = ("images_fts_insert", "images_fts_delete", "images_fts_update")


def _create_fts(columns: tuple[str, ...]) -> None:
    """The external-content FTS5 index on images.seq over `columns`, its triggers, and a rebuild from the
    rows already there. SQLite only: PostgreSQL's index (0003) is a generated column, no triggers."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    op.execute(
        f"CREATE VIRTUAL TABLE images_fts USING fts5({cols},"
        " content='images', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN"
        f" INSERT INTO images_fts(rowid, {cols}) VALUES (new.seq, {new}); END"
    )
    op.execute(
        f"CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN"
        f" INSERT INTO images_fts(images_fts, rowid, {cols}) VALUES ('delete', old.seq, {old}); END"
    )
    op.execute(
        f"CREATE TRIGGER images_fts_update AFTER UPDATE OF {cols} ON images BEGIN"
        f" INSERT INTO images_fts(images_fts, rowid, {cols}) VALUES ('delete', old.seq, {old});"
        f" INSERT INTO images_fts(rowid, {cols}) VALUES (new.seq, {new}); END"
    )
    op.execute("INSERT INTO images_fts(images_fts) VALUES ('rebuild')")


def _drop_fts() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS images_fts")


def _backfill() -> None:
    """region_prompts of every image that has a generation, from that generation's request, in keyset
    batches (no cursor stays open across the updates)."""
    conn = op.get_bind()
    select = sa.text(
        "SELECT images.seq, generations.request FROM images JOIN generations ON generations.id = images.generation_id"
        " WHERE images.seq > :after ORDER BY images.seq LIMIT :limit"
    )
    update = sa.text("UPDATE images SET region_prompts = :text WHERE seq = :seq")
    after = 0
    while rows := conn.execute(select, {"after": after, "limit": _BATCH}).all():
        changes = []
        for seq, request in rows:
            try:
                parsed = json.loads(request) if isinstance(request, str) else request
            except ValueError:  # a request stored as unreadable text: nothing to find it by
                parsed = None
            text = region_prompts_text(parsed)
            if text:
                changes.append({"text": text, "seq": seq})
        if changes:
            conn.execute(update, changes)
        after = rows[-1][0]


def upgrade() -> None:
    _drop_fts()  # its triggers name the columns; rebuilt below with the new one
    op.add_column('images', sa.Column('region_prompts', sa.Text(), server_default='', nullable=False))
    _backfill()
    _create_fts(("prompt", "negative_prompt", "model_name", "region_prompts"))


def downgrade() -> None:
    _drop_fts()
    op.drop_column('images', 'region_prompts')  # SQLite >= 3.35 drops a column in place
    _create_fts(("prompt", "negative_prompt", "model_name"))
