"""The migrations build exactly the tables the models declare, on both backends."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from convmem import migrate, models
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


def _snapshot(db: Database) -> tuple[dict[str, list[Any]], list[tuple[str, str]], list[str]]:
    tables = ("profiles", "profile_traits", "profile_identifiers")
    with db.engine.connect() as conn:
        rows = {t: sorted(conn.exec_driver_sql(f"SELECT * FROM {t}").all()) for t in tables}
        indexes = sorted(
            conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN ('profiles', 'profile_traits', 'profile_identifiers')"
            ).all()
        )
        kinds = [
            sql
            for (sql,) in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN "
                "('profiles', 'profile_traits', 'profile_identifiers') ORDER BY name"
            )
        ]
    return rows, [tuple(i) for i in indexes], kinds


def test_profile_tables_are_rebuilt_without_rowid_keeping_rows_and_indexes(
    tmp_path: Any,
) -> None:
    """Migration 0011 rebuilds SQLite's profile tables; nothing may be lost
    either way, partial indexes included."""
    db = Database(f"sqlite:///{tmp_path / 'rebuild.db'}")
    migrate.upgrade(db, "0010")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO profiles VALUES ('s', 'p1', NULL, '2026-01-01 00:00:00.000000', "
            "'2026-01-02 00:00:00.000000'), ('s', 'p2', 'p1', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000')"
        )
        conn.exec_driver_sql(
            "INSERT INTO profile_traits VALUES ('s', 'p1', 'Contact.email', 'Contact', 'email', "
            "'\"a@example.com\"', '2026-01-01 00:00:00.000000', 'def1')"
        )
        conn.exec_driver_sql(
            "INSERT INTO profile_identifiers VALUES ('s', 'p1', 'email', 'a@example.com', NULL, "
            "'k1', 1, 'a@ex', 'com', '2026-01-01 00:00:00.000000')"
        )
    rows, indexes, kinds = _snapshot(db)
    assert not any("WITHOUT ROWID" in sql for sql in kinds)
    migrate.upgrade(db, "0011")
    after_rows, after_indexes, after_kinds = _snapshot(db)
    assert after_rows == rows
    assert after_indexes == indexes
    assert all(sql.rstrip().endswith("WITHOUT ROWID") for sql in after_kinds)
    with db.engine.connect() as conn:
        command.downgrade(_config(conn), "0010")
        conn.commit()
    assert _snapshot(db) == (rows, indexes, kinds)
    db.dispose()


def _config(conn: Any) -> Any:
    config = migrate.alembic_config()
    config.attributes["connection"] = conn
    return config
