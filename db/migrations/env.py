"""Alembic environment: batch mode for SQLite, the app's metadata, the app's engine when given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from db.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    # The full-text index (SQLite: a virtual table and its shadow tables; PostgreSQL: a generated column
    # and its GIN index) is managed by hand in migrations.
    if type_ == "table" and name.startswith("images_fts"):
        return False
    return not (type_ in ("column", "index") and name in ("search_vector", "ix_images_search_vector"))


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


run_migrations_online()
