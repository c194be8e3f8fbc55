"""Migrations: head matches the models, pragmas are set, reopening is a no-op, down and up again work."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db import boards
from db.migrate import alembic_config
from db.models import Base
from db.session import BUSY_TIMEOUT_MS, DB_FILE, Database


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name.startswith("images_fts"))


def diffs(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True, "render_as_batch": True}
        )
        return compare_metadata(ctx, Base.metadata)


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def fts_objects(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'images_fts%'")).scalars())


def test_fresh_database_at_head_matches_the_models(tmp_path):
    db = Database(tmp_path)
    assert (tmp_path / DB_FILE).exists()
    assert current(db.write_engine) == head()
    assert diffs(db.write_engine) == []
    tables = set(inspect(db.read_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert {"images_fts", "images_fts_insert", "images_fts_delete", "images_fts_update"} <= fts_objects(db.read_engine)
    db.dispose()


def test_pragmas_on_every_connection(tmp_path):
    db = Database(tmp_path)
    for engine in (db.read_engine, db.write_engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
    with db.write() as s:  # and inside the session transactions the app uses
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_reopening_is_a_no_op_upgrade_and_keeps_data(tmp_path):
    db = Database(tmp_path)
    board = boards.create_board(db, "kept")
    with db.read_engine.connect() as conn:
        schema = conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY name")).all()
    db.dispose()

    again = Database(tmp_path)
    assert current(again.write_engine) == head()
    assert boards.get_board(again, board.id).name == "kept"
    with again.read_engine.connect() as conn:
        assert conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY name")).all() == schema
    again.dispose()
    third = Database(tmp_path, upgrade=False)
    assert current(third.read_engine) == head()
    third.dispose()


def test_downgrade_to_base_and_up_again(tmp_path):
    db = Database(tmp_path)
    config = alembic_config(db.write_engine)
    command.downgrade(config, "base")
    assert current(db.write_engine) is None
    assert set(inspect(db.read_engine).get_table_names()) <= {"alembic_version"}
    assert fts_objects(db.read_engine) == set()

    command.upgrade(config, "head")
    assert current(db.write_engine) == head()
    assert diffs(db.write_engine) == []
    # the full-text triggers are back and working
    board = boards.create_board(db, "b")
    with db.write() as s:
        s.execute(text(
            "INSERT INTO images (id, file_name, board_id, width, height, file_size, content_hash, origin,"
            " category, starred, created_at, prompt, negative_prompt, metadata)"
            " VALUES ('i1', 'i1.png', :b, 1, 1, 1, 'h', 'generated', 'general', 0, '2026-01-01 00:00:00',"
            " 'a red fox', '', '{}')"
        ), {"b": board.id})  # fmt: skip
    with db.read() as s:
        assert s.execute(text("SELECT rowid FROM images_fts WHERE images_fts MATCH 'fox'")).all() != []
    db.dispose()


def test_postgresql_head_matches_the_models_and_down_and_up_again_work(tmp_path, pg_server):
    from conftest import new_pg_database

    def include(obj, name, type_, reflected, compare_to) -> bool:  # PostgreSQL's full-text column and index
        return not (type_ in ("column", "index") and name in ("search_vector", "ix_images_search_vector"))

    url = new_pg_database(pg_server, "template1")  # an empty database
    db = Database(tmp_path, url=url)
    assert current(db.write_engine) == head()
    with db.write_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    columns = {c["name"] for c in inspect(db.read_engine).get_columns("images")}
    assert "search_vector" in columns
    kept = boards.create_board(db, "kept")
    config = alembic_config(db.write_engine)
    command.downgrade(config, "0002")
    assert "search_vector" not in {c["name"] for c in inspect(db.read_engine).get_columns("images")}
    command.upgrade(config, "head")
    assert boards.get_board(db, kept.id).name == "kept"
    db.dispose()
