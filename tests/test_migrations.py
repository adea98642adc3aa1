"""The migrations build exactly the tables the models declare, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from convmem import migrate, models
from convmem.kit.db import Database
from convmem.profiles import trait_values
from tests.conftest import PG_ADMIN, postgres_reachable


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


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Database]:
    """An empty database of each backend (migrated by the test itself)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield db
        db.dispose()
        return
    if not postgres_reachable():
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN}")
    name = f"convmem_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(str(make_url(PG_ADMIN).set(drivername="postgresql+psycopg", database=name)))
    yield db
    db.dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


VALUES = [
    # (profile, trait key, group, name, JSON value, updated_at, def_key)
    (
        "p1",
        "Contact.email",
        "Contact",
        "email",
        '"a@example.com"',
        "2026-01-01 00:00:00.000001",
        "d1",
    ),
    ("p1", "Contact.tags", "Contact", "tags", '["x", "y"]', "2026-01-02 03:04:05.000000", "d2"),
    ("p1", "Loyalty.points", "Loyalty", "points", "12.5", "2026-01-03 00:00:00.123456", "d3"),
    (
        "p1",
        "Loyalty.extra",
        "Loyalty",
        "extra",
        '{"a": {"b": null}}',
        "2026-01-03 00:00:00.5",
        None,
    ),
    ("p2", "a-b.c", "a-b", "c", "true", "2026-01-04 00:00:00.000000", "d4"),
]


def _old_values(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT profile_id, trait_key, group_name, name, value, updated_at, def_key "
                "FROM profile_traits ORDER BY profile_id, trait_key"
            )
        ).all()
    return [
        (
            r[0],
            r[1],
            r[2],
            r[3],
            json.loads(r[4]) if db.is_sqlite and isinstance(r[4], str) else r[4],
            _utc(r[5]),
            r[6],
        )
        for r in rows
    ]


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def test_trait_values_move_into_one_row_per_group_and_back(fresh_db: Database) -> None:
    """Migration 0012 folds profile_traits into profile_trait_groups on both
    backends: every value (strings, arrays, numbers, nested objects with
    nulls), its timestamp to the microsecond and its definition key survive
    the trip, and the downgrade gives the same rows back."""
    db = fresh_db
    migrate.upgrade(db, "0011")
    with db.engine.begin() as conn:
        for pid, key, group, name, value, stamp, def_key in VALUES:
            conn.execute(
                text(
                    "INSERT INTO profile_traits VALUES "
                    "('s', :pid, :key, :grp, :name, :value, :stamp, :def_key)"
                    if db.is_sqlite
                    else "INSERT INTO profile_traits VALUES ('s', :pid, :key, :grp, :name, "
                    "CAST(:value AS jsonb), CAST(:stamp || '+00' AS timestamptz), :def_key)"
                ),
                {"pid": pid, "key": key, "grp": group, "name": name, "value": value}
                | {"stamp": stamp, "def_key": def_key},
            )
    before = _old_values(db)
    migrate.upgrade(db, "0012")
    with db.transaction(write=False) as session:
        stored = trait_values.of(session, "s", ["p1", "p2"])
    assert [
        (v.profile_id, v.trait_key, v.group_name, v.name, v.value, v.updated_at, v.def_key)
        for v in stored
    ] == [
        (pid, key, group, name, json.loads(value), _utc(stamp), def_key)
        for pid, key, group, name, value, stamp, def_key in sorted(VALUES, key=lambda r: r[:2])
    ]
    with db.engine.connect() as conn:
        command.downgrade(_config(conn), "0011")
        conn.commit()
    assert _old_values(db) == before


IDENTIFIERS = [
    # (profile, idType, value, unique_value)
    ("p1", "email", "a@example.com", "a@example.com"),
    ("p1", "phone", "+14155550100", None),
    ("p2", "phone", "+14155550100", None),  # shared: its idType is not unique
    ("p2", "chat", "c-2", "c-2"),
]


def _identifier_rows(db: Database, column: str) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    f"SELECT profile_id, id_type, value, {column}, sort_key, fuzzy, "
                    "block_prefix, block_suffix FROM profile_identifiers "
                    "ORDER BY profile_id, id_type, value"
                )
            )
        ]


def test_identifier_scope_replaces_unique_value_and_back(fresh_db: Database) -> None:
    """Migration 0013: a unique value becomes scope "", a shared one its
    profile's id; the one index still refuses a second holder of a unique
    value and still lets profiles share the others; the downgrade restores
    the rows as they were."""
    db = fresh_db
    migrate.upgrade(db, "0012")
    stamp = "'2026-01-01 00:00:00.000000'" + ("" if db.is_sqlite else "::timestamptz")
    with db.engine.begin() as conn:
        for n, (pid, id_type, value, unique) in enumerate(IDENTIFIERS):
            conn.execute(
                text(
                    "INSERT INTO profile_identifiers VALUES "
                    f"('s', :pid, :t, :v, :u, :k, true, 'abc', 'xyz', {stamp})"
                ),
                {"pid": pid, "t": id_type, "v": value, "u": unique, "k": f"k{n}"},
            )
    before = _identifier_rows(db, "unique_value")
    migrate.upgrade(db, "0013")
    assert [r[:4] for r in _identifier_rows(db, "scope")] == [
        (pid, id_type, value, "" if unique else pid)
        for pid, id_type, value, unique in sorted(IDENTIFIERS)
    ]
    assert [r[4:] for r in _identifier_rows(db, "scope")] == [r[4:] for r in before]
    insert = text(  # PostgreSQL added the column last: name them
        "INSERT INTO profile_identifiers (store_id, profile_id, id_type, value, scope, "
        "sort_key, fuzzy, block_prefix, block_suffix, created_at) VALUES "
        f"('s', :pid, :t, :v, :scope, 'k9', false, 'abc', 'xyz', {stamp})"
    )
    with db.engine.begin() as conn:  # one more profile may share the phone
        conn.execute(insert, {"pid": "p3", "t": "phone", "v": "+14155550100", "scope": "p3"})
    with pytest.raises(Exception, match=r"(?i)unique"), db.engine.begin() as conn:
        conn.execute(insert, {"pid": "p3", "t": "email", "v": "a@example.com", "scope": ""})
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM profile_identifiers WHERE profile_id = 'p3'"))
    with db.engine.connect() as conn:
        command.downgrade(_config(conn), "0012")
        conn.commit()
    assert _identifier_rows(db, "unique_value") == before
