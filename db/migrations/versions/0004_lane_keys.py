"""lane keys: live painting's lane per client

queue_items gains lane_key: the key of the superseding lane an item is in (a browser tab's, for live
painting), so one client's live job supersedes only its own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.drop_column('lane_key')
