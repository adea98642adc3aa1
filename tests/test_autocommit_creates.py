"""On PostgreSQL a request's create of a new profile is one statement
(look-up, store check and inserts) committed on its own: no BEGIN and COMMIT
round trips (kit.db.autocommit_until_begin, engine._create_alone). Anything
more than that one insert runs in a transaction as before, a racing writer
of the same identifier is caught by the unique index and retried, and the
connection goes back to the pool in transactions whatever happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from convmem.kit.db import Database
from convmem.profiles import engine, store_schema, trait_values
from convmem.profiles import repository as repo
from convmem.profiles.models import Profile
from convmem.profiles.rules import Record, TraitWrite, record_from_traits
from convmem.stores import service as stores
from tests.conftest import Api
from tests.factories import make_profile, make_store, profiles_url
from tests.invariants import identity_violations

INSERT = "INSERT INTO profiles"


@pytest.fixture
def seen(db: Database) -> Iterator[list[tuple[bool, str]]]:
    """(autocommit, statement) of each data-plane statement while the test runs."""
    if db.async_engine is None:
        pytest.skip("SQLite writes run in group-committed transactions; no autocommit path")
    found: list[tuple[bool, str]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        found.append((conn.connection.dbapi_connection.autocommit, statement))

    event.listen(db.async_engine.sync_engine, "before_cursor_execute", record)
    yield found
    event.remove(db.async_engine.sync_engine, "before_cursor_execute", record)


def test_a_new_profile_is_one_statement_committed_alone(
    api: Api, seen: list[tuple[bool, str]]
) -> None:
    store_id = make_store(api)
    make_profile(api, store_id, email="warm@example.com")  # the store is known from here
    seen.clear()
    profile_id = make_profile(api, store_id, email="new@example.com", firstName="New")
    # Its look-up, the store check and its inserts: one statement.
    assert [autocommit for autocommit, _ in seen] == [True], seen
    assert INSERT in seen[0][1] and "guard" in seen[0][1]
    fetched = api.get(profiles_url(store_id, profile_id)).json()
    assert fetched["traits"]["Contact"] == {"email": "new@example.com", "firstName": "New"}


def test_a_new_profile_is_stored_as_the_general_write_path_stores_it(
    api: Api, db: Database, seen: list[tuple[bool, str]]
) -> None:
    """The one-statement create (engine._create_alone) and engine.write's
    general path store the same rows for the same record."""
    store_id = make_store(api)
    contact = {"email": "same@example.com", "phone": "+14155550100", "firstName": "Same"}
    make_profile(api, store_id, email="warm@example.com")  # the store is known from here
    seen.clear()
    alone = make_profile(api, store_id, **contact)
    assert len(seen) == 1, seen
    # The general path: a sync session, never in autocommit.
    with db.transaction() as session:
        ref = stores.get_active(session, account_sid=api.sid, store_id=store_id)
        schema = store_schema.load(session, ref)
        record = record_from_traits(
            "traits",
            {"Contact": {**contact, "email": "other@x.com", "phone": "+14155550101"}},
            schema,
        )
        general = engine.write_all(session, store_id, schema, [record])[0]

    def stored(profile_id: str) -> tuple[Any, ...]:
        with db.transaction(write=False) as session:
            traits = trait_values.of(session, store_id, [profile_id])
            idents = repo.identifiers_of(session, store_id, [profile_id])
            profile = session.get(Profile, (store_id, profile_id))
            assert profile is not None
            return (
                # Values too, but for the identifiers', which differ on purpose.
                [
                    (t.group_name, t.name, t.def_key, t.name in ("email", "phone") or t.value)
                    for t in traits
                ],
                sorted((i.id_type, i.scope == "", i.fuzzy) for i in idents),
                profile.merged_into,
                profile.created_at == profile.updated_at,
            )

    assert stored(alone) == stored(general)


def test_a_write_that_changes_a_stored_profile_runs_in_a_transaction(
    api: Api, seen: list[tuple[bool, str]]
) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="old@example.com")
    seen.clear()
    assert make_profile(api, store_id, email="old@example.com", firstName="Old") == profile_id
    # The look-up still runs alone; from the row lock on, one transaction.
    assert seen[0][0] is True
    assert len(seen) > 2 and not any(autocommit for autocommit, _ in seen[1:]), seen
    assert "FOR UPDATE" in seen[1][1]


def test_a_patch_that_removes_a_trait_runs_in_a_transaction(
    api: Api, seen: list[tuple[bool, str]]
) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="null@example.com", firstName="Gone")
    seen.clear()
    url = profiles_url(store_id, profile_id)
    response = api.patch(url, json={"traits": {"Contact": {"firstName": None, "city": "Oslo"}}})
    assert response.status_code == 202, response.text
    # The removal and the write must stand or fall together.
    assert seen and not any(autocommit for autocommit, _ in seen[1:]), seen
    traits = api.get(url).json()["traits"]["Contact"]
    assert traits == {"email": "null@example.com", "city": "Oslo"}


def test_a_racing_insert_of_the_same_identifier_is_retried_into_an_update(
    api: Api, db: Database, seen: list[tuple[bool, str]]
) -> None:
    """Another writer has inserted the same new email, not yet committed,
    when the create's one statement runs: the statement does not see it,
    waits on the unique index, and fails when the rival commits. The request
    runs again in a transaction (with the key locks) and updates that profile."""
    store_id = make_store(api)
    make_profile(api, store_id, email="warm@example.com")
    key = ("email", "race@example.com")
    rival: list[str] = []
    connections: list[Any] = []
    inserted = threading.Event()

    def rival_write() -> None:
        with db.transaction() as session:
            ref = stores.get_active(session, account_sid=api.sid, store_id=store_id)
            writes = [TraitWrite("Contact", "email", key[1]), TraitWrite("Contact", "city", "Oslo")]
            done = engine.write(
                session, store_id, store_schema.load(session, ref), [Record(writes, [key])]
            )
            rival.append(str(done[0].profile_id))
            inserted.set()
            time.sleep(0.5)  # the create's statement runs (and waits) meanwhile

    def start_a_rival(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if connections or INSERT not in statement:
            return
        connections.append(conn.connection.dbapi_connection)
        threading.Thread(target=rival_write).start()
        assert inserted.wait(10)

    assert db.async_engine is not None
    event.listen(db.async_engine.sync_engine, "before_cursor_execute", start_a_rival)
    seen.clear()
    try:
        profile_id = make_profile(api, store_id, email=key[1], firstName="Second")
        create = list(seen)
    finally:
        event.remove(db.async_engine.sync_engine, "before_cursor_execute", start_a_rival)
    assert rival and profile_id == rival[0]
    assert connections[0].autocommit is False  # back in the pool as it came
    traits = api.get(profiles_url(store_id, profile_id)).json()["traits"]["Contact"]
    assert traits == {"email": key[1], "city": "Oslo", "firstName": "Second"}
    found = api.post(f"{profiles_url(store_id)}/Lookup", json={"idType": "email", "value": key[1]})
    assert found.json()["profiles"] == [profile_id]
    assert identity_violations(db, store_id) == []
    # The retry was an ordinary transaction: its statements after the failed
    # one ran outside autocommit, behind the key locks.
    failed = next(n for n, (_, s) in enumerate(create) if INSERT in s)
    assert create[failed][0] is True
    assert not any(autocommit for autocommit, _ in create[failed + 1 :]), create
    assert any("pg_advisory_xact_lock" in s for _, s in create[failed + 1 :]), create
