"""SQL expressions that are written differently on SQLite and PostgreSQL, one construct each.

Compiled per dialect (SQLAlchemy's `@compiles`), so query code stays one code path for both databases.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class unindexed(FunctionElement[Any]):
    """A column's value in a form SQLite will not look up in an index (`x || ''`, `x + 0`), so its planner
    walks the (created_at, id) index in page order and tests this term row by row. PostgreSQL plans by
    statistics: the plain column."""

    inherit_cache = True

    def __init__(self, column: Any):
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element: unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"({column} || '')" if isinstance(element.type, String) else f"({column} + 0)"


class utc_day(FunctionElement[str]):
    """A naive-UTC timestamp column as its day, 'YYYY-MM-DD'."""

    inherit_cache = True
    type = String()


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"
