"""scale-out: queue leases and attempts, queue settings, the model registry, PostgreSQL full-text search

queue_items gains attempts, worker and heartbeat_at (a worker's lease on its item); queue_attempts keeps
each run; queue_settings holds `paused` for every worker; model_records and model_options hold the
registry when the database is shared. On PostgreSQL, the full-text index: a generated tsvector column
over the same four columns as SQLite's FTS5 index, accents folded like FTS5's remove_diacritics, and a GIN
index on it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# unaccent() is only STABLE (it reads a dictionary); a generated column needs an IMMUTABLE function.
# The two-argument form names its dictionary, so this wrapper is safe to declare IMMUTABLE.
_UNACCENT = (
    "CREATE OR REPLACE FUNCTION invoke_canvas_unaccent(text) RETURNS text"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ SELECT unaccent('unaccent'::regdictionary, $1) $$"
)
_VECTOR = (
    "to_tsvector('simple', invoke_canvas_unaccent(coalesce(prompt, '') || ' ' || coalesce(negative_prompt, '')"
    " || ' ' || coalesce(model_name, '') || ' ' || coalesce(region_prompts, '')))"
)


def upgrade() -> None:
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('worker', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
    op.create_table('queue_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('error_type', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['queue_items.id'], name=op.f('fk_queue_attempts_item_id_queue_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_attempts'))
    )
    with op.batch_alter_table('queue_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_attempts_item_id'), ['item_id'], unique=False)
    op.create_table('queue_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_queue_settings'))
    )
    op.create_table('model_records',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_records'))
    )
    op.create_table('model_options',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_options'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        # seeds are unsigned 32-bit (SQLite's INTEGER already holds them)
        op.alter_column('generations', 'seed', type_=sa.BigInteger(), existing_nullable=True)
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute(_UNACCENT)
        op.execute(f"ALTER TABLE images ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({_VECTOR}) STORED")
        op.execute("CREATE INDEX ix_images_search_vector ON images USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_images_search_vector")
        op.execute("ALTER TABLE images DROP COLUMN IF EXISTS search_vector")
        op.execute("DROP FUNCTION IF EXISTS invoke_canvas_unaccent(text)")
        op.alter_column('generations', 'seed', type_=sa.Integer(), existing_nullable=True)
    op.drop_table('model_options')
    op.drop_table('model_records')
    op.drop_table('queue_settings')
    with op.batch_alter_table('queue_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queue_attempts_item_id'))
    op.drop_table('queue_attempts')
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker')
        batch_op.drop_column('attempts')
