"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 12:32:20.808244
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('boards',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.String(length=32), nullable=True),
    sa.Column('cover_image_id', sa.String(length=32), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['boards.id'], name=op.f('fk_boards_parent_id_boards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_boards'))
    )
    with op.batch_alter_table('boards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_boards_parent_id'), ['parent_id'], unique=False)

    op.create_table('canvases',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canvases'))
    )
    op.create_table('canvas_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('canvas_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('autosave', sa.Boolean(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['canvas_id'], ['canvases.id'], name=op.f('fk_canvas_versions_canvas_id_canvases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canvas_versions')),
    sa.UniqueConstraint('canvas_id', 'version', name='uq_canvas_versions_canvas_id_version')
    )
    with op.batch_alter_table('canvas_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_canvas_versions_canvas_id'), ['canvas_id'], unique=False)

    op.create_table('generations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('canvas_id', sa.String(length=32), nullable=True),
    sa.Column('canvas_version', sa.Integer(), nullable=True),
    sa.Column('board_id', sa.String(length=32), nullable=True),
    sa.Column('model_id', sa.String(length=200), nullable=True),
    sa.Column('model_name', sa.String(length=200), nullable=True),
    sa.Column('model_hash', sa.String(length=64), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('error_type', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['board_id'], ['boards.id'], name=op.f('fk_generations_board_id_boards'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['canvas_id'], ['canvases.id'], name=op.f('fk_generations_canvas_id_canvases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generations'))
    )
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generations_board_id'), ['board_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generations_canvas_id'), ['canvas_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generations_created_at'), ['created_at'], unique=False)

    op.create_table('images',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('file_name', sa.String(length=64), nullable=False),
    sa.Column('board_id', sa.String(length=32), nullable=True),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('file_size', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('starred', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('negative_prompt', sa.Text(), nullable=False),
    sa.Column('model_name', sa.String(length=200), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('generation_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['board_id'], ['boards.id'], name=op.f('fk_images_board_id_boards'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], name=op.f('fk_images_generation_id_generations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_images')),
    sa.UniqueConstraint('file_name', name=op.f('uq_images_file_name')),
    sa.UniqueConstraint('id', name=op.f('uq_images_id'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index('ix_images_board_id_created_at_id', ['board_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index('ix_images_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_model_name'), ['model_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_origin'), ['origin'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_starred'), ['starred'], unique=False)

    # Full-text search over prompts and model names: an external-content FTS5 index on images.seq,
    # kept in step by triggers so no code path can forget it. PostgreSQL's own index comes in 0003.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            "CREATE VIRTUAL TABLE images_fts USING fts5(prompt, negative_prompt, model_name,"
            " content='images', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN"
            " INSERT INTO images_fts(rowid, prompt, negative_prompt, model_name)"
            " VALUES (new.seq, new.prompt, new.negative_prompt, new.model_name); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN"
            " INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt, model_name)"
            " VALUES ('delete', old.seq, old.prompt, old.negative_prompt, old.model_name); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt, model_name ON images BEGIN"
            " INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt, model_name)"
            " VALUES ('delete', old.seq, old.prompt, old.negative_prompt, old.model_name);"
            " INSERT INTO images_fts(rowid, prompt, negative_prompt, model_name)"
            " VALUES (new.seq, new.prompt, new.negative_prompt, new.model_name); END"
        )

    op.create_table('queue_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('generation_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('error_type', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], name=op.f('fk_queue_items_generation_id_generations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_items'))
    )
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_items_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_items_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index('ix_queue_items_status_priority_id', ['status', 'priority', 'id'], unique=False)



def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ("images_fts_insert", "images_fts_delete", "images_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS images_fts")
    with op.batch_alter_table('queue_items', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_items_status_priority_id')
        batch_op.drop_index(batch_op.f('ix_queue_items_generation_id'))
        batch_op.drop_index(batch_op.f('ix_queue_items_batch_id'))

    op.drop_table('queue_items')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_starred'))
        batch_op.drop_index(batch_op.f('ix_images_origin'))
        batch_op.drop_index(batch_op.f('ix_images_model_name'))
        batch_op.drop_index(batch_op.f('ix_images_generation_id'))
        batch_op.drop_index('ix_images_created_at_id')
        batch_op.drop_index(batch_op.f('ix_images_content_hash'))
        batch_op.drop_index('ix_images_board_id_created_at_id')

    op.drop_table('images')
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generations_created_at'))
        batch_op.drop_index(batch_op.f('ix_generations_canvas_id'))
        batch_op.drop_index(batch_op.f('ix_generations_board_id'))

    op.drop_table('generations')
    with op.batch_alter_table('canvas_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_canvas_versions_canvas_id'))

    op.drop_table('canvas_versions')
    op.drop_table('canvases')
    with op.batch_alter_table('boards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_boards_parent_id'))

    op.drop_table('boards')
