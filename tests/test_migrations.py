"""The migrations build exactly the tables the models declare, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from convmem import models
from convmem.kit.db import Database


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Tests share the database with tables of their own (dataset sources), and
    # the lexical indexes exist on one backend only (SQLite's FTS5 tables,
    # PostgreSQL's generated search_vector columns): none is in the models.
    if type_ == "column" and name == "search_vector":
        return False
    return not (type_ == "table" and reflected and compare_to is None)


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": False, "include_object": _ours}
        )
        assert compare_metadata(context, models.Base.metadata) == []
