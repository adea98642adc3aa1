"""kit.prepared.Prepared runs hot statements on the driver's cursor: what it returns
and raises must be what Connection.execute would, on both backends."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, event, select, text, update
from sqlalchemy.exc import DBAPIError

from convmem.kit.db import Database, JSONType, UTCDateTime, is_unique_violation
from convmem.kit.prepared import GUARD, Guard, Prepared, driver_executemany
from convmem.profiles.models import Profile

# A table of the tests' own with every kind of column type processing the
# hot statements meet: JSON, UTC datetimes, nullable text.
PROBE = Table(
    "prepared_probe",
    MetaData(),
    Column("store_id", String(64), primary_key=True),
    Column("profile_id", String(64), primary_key=True),
    Column("trait_key", String(130), primary_key=True),
    Column("group_name", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", JSONType, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("def_key", String(64)),
)
TRAITS = Prepared(
    select(PROBE.c.trait_key, PROBE.c.value, PROBE.c.updated_at, PROBE.c.def_key)
    .where(
        PROBE.c.store_id == bindparam("store_id"),
        PROBE.c.profile_id == bindparam("profile_id"),
    )
    .order_by(PROBE.c.trait_key)
)


@pytest.fixture(autouse=True)
def _probe_table(db: Database) -> None:
    PROBE.metadata.create_all(db.engine, checkfirst=True)


TOUCH = Prepared(
    update(Profile.__table__)  # type: ignore[arg-type]
    .where(Profile.store_id == bindparam("sid"), Profile.id == bindparam("pid"))
    .values(updated_at=bindparam("now"))
)
VALUES: dict[str, Any] = {
    "a.text": "héllo \u2603",
    "b.number": 12.5,
    "c.int": 2**62,
    "d.list": [1, "two", None, {"x": [True]}],
    "e.empty": "",
    "f.null_list": [None],
}


def _rows(store_id: str, profile_id: str, now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "store_id": store_id,
            "profile_id": profile_id,
            "trait_key": key,
            "group_name": key.split(".")[0],
            "name": key.split(".")[1],
            "value": value,
            "updated_at": now,
            "def_key": None if key == "e.empty" else f"def-{key}",
        }
        for key, value in VALUES.items()
    ]


def test_rows_match_connection_execute(db: Database) -> None:
    store_id, profile_id = "mem_store_" + secrets.token_hex(8), "mem_profile_x"
    now = dt.datetime(2026, 12, 1, 17, 30, 5, 123456, tzinfo=dt.UTC)
    with db.transaction() as session:
        session.execute(PROBE.insert(), _rows(store_id, profile_id, now))
        fast = TRAITS.all(session, store_id=store_id, profile_id=profile_id)
        slow = list(
            session.connection().execute(
                TRAITS.statement, {"store_id": store_id, "profile_id": profile_id}
            )
        )
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
        assert {r.trait_key: r.value for r in fast} == VALUES
        assert all(r.updated_at == now and r.updated_at.tzinfo is not None for r in fast)
        assert TRAITS.first(session, store_id=store_id, profile_id="nobody") is None
        assert TRAITS.scalars(session, store_id=store_id, profile_id=profile_id) == sorted(VALUES)
        session.rollback()


def test_execute_many_updates_and_counts(db: Database) -> None:
    store_id = "mem_store_" + secrets.token_hex(8)
    then = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    later = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    with db.transaction() as session:
        session.execute(
            Profile.__table__.insert(),
            [
                {"store_id": store_id, "id": f"p{n}", "created_at": then, "updated_at": then}
                for n in range(3)
            ],
        )
        params = [{"sid": store_id, "pid": pid, "now": later} for pid in ("p0", "p2", "absent")]
        assert TOUCH.execute_many(session, params) == 2
        assert TOUCH.execute_many(session, []) == 0
        stamps = dict(
            session.execute(
                select(Profile.id, Profile.updated_at).where(Profile.store_id == store_id)
            ).all()
        )
        assert stamps == {"p0": later, "p1": then, "p2": later}
        session.rollback()


def test_driver_errors_arrive_as_sqlalchemy_errors(db: Database) -> None:
    """The error handlers decide 409 vs 500 from a DBAPIError's driver error."""
    store_id = "mem_store_" + secrets.token_hex(8)
    with db.transaction() as session:
        sql = "INSERT INTO profiles (store_id, id, created_at, updated_at) VALUES (?, ?, ?, ?)"
        if not db.is_sqlite:
            sql = sql.replace("?", "%s")
        row = (store_id, "dup", "2026-01-01 00:00:00", "2026-01-01 00:00:00")
        with pytest.raises(DBAPIError) as raised:
            driver_executemany(session, sql, [row, row])
        assert is_unique_violation(raised.value)
        session.rollback()
    broken = Prepared(text("SELECT no_such_column FROM profiles WHERE id = :id"))
    with db.transaction() as session, pytest.raises(DBAPIError) as raised:
        broken.all(session, id="x")
    assert not is_unique_violation(raised.value)


def test_statement_listeners_see_prepared_statements(db: Database) -> None:
    """What the query-plan tests rely on to check every hot statement."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engines = [db.engine] + ([db.async_engine.sync_engine] if db.async_engine else [])
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listen)
    try:
        with db.transaction() as session:
            TRAITS.all(session, store_id="s", profile_id="p")
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listen)
    assert any("FROM prepared_probe" in statement for statement in seen)


def test_expanding_parameters_are_refused(db: Database) -> None:
    """An IN list is rendered per call; Prepared would run the placeholder."""
    listed = Prepared(select(Profile.id).where(Profile.id.in_(bindparam("ids", expanding=True))))
    with db.transaction() as session, pytest.raises(ValueError, match="expanding"):
        listed.all(session, ids=["a"])


# A check that some profile row still exists: a stand-in for a store's guard.
STILL_THERE = Prepared(
    select(Profile.updated_at).where(
        Profile.store_id == bindparam("guard_store"), Profile.id == bindparam("guard_id")
    )
)


class Seen:
    """What a guard's verify was given, and whether it refuses."""

    def __init__(self, refuse: bool = False) -> None:
        self.rows: list[tuple[Any, ...] | None] = []
        self.refuse = refuse

    def __call__(self, row: tuple[Any, ...] | None) -> None:
        self.rows.append(row)
        if self.refuse or row is None:
            raise LookupError("guard refused")


def _profile(session: Any, store_id: str, when: dt.datetime) -> None:
    session.execute(
        Profile.__table__.insert(),
        [{"store_id": store_id, "id": "p", "created_at": when, "updated_at": when}],
    )


def test_a_guard_rides_on_the_first_select_and_leaves_its_rows_alone(db: Database) -> None:
    store_id = "mem_store_" + secrets.token_hex(8)
    now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    with db.transaction() as session:
        _profile(session, store_id, now)
        # Inserted out of order: the guarded statement must keep its ORDER BY.
        rows = list(reversed(_rows(store_id, "p", now)))
        session.execute(PROBE.insert(), rows)
        plain = TRAITS.all(session, store_id=store_id, profile_id="p")
        seen = Seen()
        guard = Guard(STILL_THERE, {"guard_store": store_id, "guard_id": "p"}, seen)
        session.info[GUARD] = guard
        guarded = TRAITS.all(session, store_id=store_id, profile_id="p")
        assert guarded == plain and [r.trait_key for r in guarded] == sorted(VALUES)
        assert seen.rows == [(now,)]
        assert GUARD not in session.info
        guard.settle(session)  # already carried: runs nothing more
        assert seen.rows == [(now,)]
        # A statement that finds nothing still carries the check.
        session.info[GUARD] = guard
        assert TRAITS.all(session, store_id=store_id, profile_id="nobody") == []
        assert seen.rows == [(now,), (now,)]
        session.rollback()


def test_a_refused_guard_raises_from_the_statement_that_carried_it(db: Database) -> None:
    store_id = "mem_store_" + secrets.token_hex(8)
    with db.transaction() as session:
        _profile(session, store_id, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        seen = Seen()
        session.info[GUARD] = Guard(STILL_THERE, {"guard_store": store_id, "guard_id": "x"}, seen)
        with pytest.raises(LookupError):
            TRAITS.all(session, store_id=store_id, profile_id="p")
        assert seen.rows == [None]
        session.rollback()


def test_a_guard_no_statement_can_carry_is_settled_on_its_own(db: Database) -> None:
    """text() statements and DML leave the guard for `settle`."""
    store_id = "mem_store_" + secrets.token_hex(8)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with db.transaction() as session:
        _profile(session, store_id, when)
        seen = Seen()
        guard = Guard(STILL_THERE, {"guard_store": store_id, "guard_id": "p"}, seen)
        session.info[GUARD] = guard
        assert Prepared(text("SELECT 1")).all(session) == [(1,)]
        TOUCH.execute_many(session, [{"sid": store_id, "pid": "p", "now": when}])
        assert seen.rows == [] and session.info[GUARD] is guard
        guard.settle(session)
        assert seen.rows == [(when,)] and GUARD not in session.info
        session.rollback()
