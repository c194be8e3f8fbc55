"""The gallery's full-text search, one query for both databases: FTS5 on SQLite, tsvector on PostgreSQL.

Both index the same four image columns (prompt, negative_prompt, model_name, region_prompts; see the
migrations 0002 and 0003), fold case and accents, and match every word of the user's text as a prefix.
User text is only ever words here (`search_terms`): quotes, operators and column filters are plain text.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

from sqlalchemy import Integer, func, literal_column, select, text

from invoke_core.limits import SEARCH_MAX_CHARS

from .models import Image

_WORD_RE = re.compile(r"\w+", re.UNICODE)  # one character class, no backtracking: linear in the text
MAX_TERMS = 32


def search_terms(search: str) -> tuple[str, ...] | None:
    """The first MAX_TERMS words in the first SEARCH_MAX_CHARS characters; None when there are none."""
    words = tuple(m.group() for m in islice(_WORD_RE.finditer(search, 0, SEARCH_MAX_CHARS), MAX_TERMS))
    return words or None


def fts5_query(terms: tuple[str, ...]) -> str:
    """Every word a quoted prefix token, all required."""
    return " ".join(f'"{w}"*' for w in terms)


def tsquery(terms: tuple[str, ...]) -> str:
    """Every word a prefix lexeme, all required. Words are `\\w+`, which holds none of tsquery's operators."""
    return " & ".join(f"{w}:*" for w in terms)


def matching_seqs(dialect: str, terms: tuple[str, ...]) -> Any:
    """A subquery of the `images.seq` values whose indexed text holds every term."""
    if dialect == "sqlite":
        return (
            text("SELECT rowid FROM images_fts WHERE images_fts MATCH :fts")
            .bindparams(fts=fts5_query(terms))
            .columns(rowid=Integer)
        )
    return select(Image.seq).where(_ts_match(terms))


def count_matches(dialect: str, terms: tuple[str, ...]) -> Any:
    """A statement counting the matching images (the planner's estimate of how selective the search is)."""
    if dialect == "sqlite":
        return text("SELECT count(*) FROM images_fts WHERE images_fts MATCH :fts").bindparams(fts=fts5_query(terms))
    return select(func.count()).select_from(Image).where(_ts_match(terms))


def _ts_match(terms: tuple[str, ...]) -> Any:
    query = func.to_tsquery(text("'simple'"), func.invoke_canvas_unaccent(tsquery(terms)))
    return literal_column("images.search_vector").op("@@")(query)  # the generated column (migration 0003)
