"""Overlapping writers on both backends: no 5xx, no deadlock left unresolved,
and the identity invariant holds at the end."""

from __future__ import annotations

import datetime as dt
import random
import secrets
import threading
from collections import Counter
from typing import Any

import pytest

from convmem.kit.db import Database
from convmem.profiles import repository as repo
from convmem.profiles.models import ProfileIdentifier
from tests.conftest import Api
from tests.factories import STORES, make_profile, make_store, profiles_url
from tests.invariants import identity_violations


def test_swapping_identifiers_between_two_profiles_concurrently(api: Api, db: Database) -> None:
    store_id = make_store(api)
    one = make_profile(api, store_id, email="one@example.com")
    two = make_profile(api, store_id, email="two@example.com")
    # Add a second, non-conflicting value type so the swap below is a pure swap.
    statuses: Counter[int] = Counter()
    barrier = threading.Barrier(2)

    def swap(profile: str, old: str, new: str) -> None:
        barrier.wait()
        for _ in range(10):
            response = api.patch(
                profiles_url(store_id, profile, "Identifiers", "email"),
                json={"idType": "email", "oldValue": old, "newValue": new},
            )
            statuses[response.status_code] += 1
            old, new = new, old

    threads = [
        threading.Thread(target=swap, args=(one, "one@example.com", "two@example.com")),
        threading.Thread(target=swap, args=(two, "two@example.com", "one@example.com")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [s for s in statuses if s >= 500], statuses
    assert identity_violations(db, store_id) == []


def test_overlapping_writers_never_fail_and_keep_the_invariant(api: Api, db: Database) -> None:
    store_id = make_store(api)
    emails = [f"user{n}@example.com" for n in range(10)]
    phones = [f"+1415555{n:04d}" for n in range(10)]
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            contact: dict[str, Any] = {"firstName": f"w{seed}"}
            if rng.random() < 0.8:
                contact["email"] = rng.choice(emails)
            if rng.random() < 0.6 or "email" not in contact:
                contact["phone"] = rng.choice(phones)
            response = api.post(profiles_url(store_id), json={"traits": {"Contact": contact}})
            if response.status_code == 202 and rng.random() < 0.3:
                target = response.json()["id"]
                response = api.patch(
                    profiles_url(store_id, target),
                    json={"traits": {"Contact": {"lastName": f"l{seed}"}}},
                )
            with lock:
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    errors.append(response.text)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[:3]
    # 308: a PATCH to a profile merged away meanwhile; 409 only once retries are spent.
    assert set(statuses) <= {202, 308, 409}, statuses
    assert statuses[202] > 100
    assert identity_violations(db, store_id) == []


def test_a_writer_waiting_on_a_lock_sees_what_its_holder_committed(db: Database) -> None:
    """A write looks up identifier holders only once its advisory locks are
    held, in a statement of its own, so it sees what the lock's previous
    holder committed (a look-up in the locking statement would read a
    snapshot taken before the wait)."""
    if db.is_sqlite:
        pytest.skip("SQLite's writers run one at a time; it takes no advisory locks")
    store_id = "mem_store_" + secrets.token_hex(8)
    key = ("email", "shared@example.com")
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    holder = db.session(write=True)
    repo.lock_keys(holder, store_id, [key])
    assert repo.holders_exact(holder, store_id, [key]) == {}
    row = {
        "store_id": store_id,
        "profile_id": "mem_profile_first",
        "id_type": key[0],
        "value": key[1],
        "scope": "mem_profile_first",
        "sort_key": "a",
        "fuzzy": False,
        "block_prefix": "",
        "block_suffix": "",
        "created_at": now,
    }
    holder.execute(ProfileIdentifier.__table__.insert(), [row])
    seen: list[dict[Any, set[str]]] = []

    def waiter() -> None:
        with db.transaction() as session:
            repo.lock_keys(session, store_id, [key])
            seen.append(repo.holders_exact(session, store_id, [key]))

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the second writer did not wait for the lock"
    holder.commit()
    holder.close()
    thread.join(10)
    assert seen == [{key: {"mem_profile_first"}}]
    with db.transaction() as session:
        session.execute(
            ProfileIdentifier.__table__.delete().where(ProfileIdentifier.store_id == store_id)
        )


def test_a_first_attempt_without_key_locks_retries_on_a_racing_insert(
    api: Api, db: Database
) -> None:
    """On PostgreSQL a request's first attempt skips the advisory locks when
    every identifier is of a unique exact idType. Two such creates of one new
    email: the second waits on the first's index entry, fails on the unique
    index once the first commits, and asks for a retry; the retry (which
    locks) updates the first's profile instead of making a second one."""
    if db.is_sqlite:
        pytest.skip("SQLite's writers run one at a time; it takes no advisory locks")
    from convmem.kit.db import ATTEMPT, RetryTransaction
    from convmem.profiles import engine, store_schema
    from convmem.profiles.rules import Record, TraitWrite
    from convmem.stores import service as stores

    store_id = make_store(api)
    key = ("email", "race@example.com")

    def record(name: str) -> Record:
        writes = [
            TraitWrite("Contact", "email", key[1], "Contact.email"),
            TraitWrite("Contact", "firstName", name, "Contact.firstName"),
        ]
        return Record(writes=writes, keys=[key])

    def write(session: Any, name: str, attempt: int) -> list[engine.Outcome]:
        session.info[ATTEMPT] = attempt
        ref = stores.get_active(session, account_sid=api.sid, store_id=store_id)
        return engine.write(session, store_id, store_schema.load(session, ref), [record(name)])

    first = db.session(write=True)
    created = write(first, "first", 1)
    assert created[0].status == engine.CREATED
    outcome: list[Any] = []

    def second() -> None:
        try:
            with db.transaction() as session:
                outcome.append(write(session, "second", 1))
        except RetryTransaction as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the second writer did not wait on the first's index entry"
    first.commit()
    first.close()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], RetryTransaction), outcome
    with db.transaction() as session:  # the retry
        again = write(session, "second", 2)
    assert again[0].status == engine.UPDATED
    assert again[0].profile_id == created[0].profile_id
    with db.transaction(write=False) as session:
        assert repo.holders_exact(session, store_id, [key]) == {key: {created[0].profile_id}}
    assert identity_violations(db, store_id) == []


def test_creates_skip_the_key_locks_only_when_every_idtype_is_unique_and_exact(
    api: Api, db: Database, statements: list[str]
) -> None:
    """The HTTP path marks a request's first attempt, so a create of unique
    identifiers goes without `pg_advisory_xact_lock`; one with an idType
    that profiles may share takes the locks."""
    if db.is_sqlite:
        pytest.skip("SQLite's writers run one at a time; it takes no advisory locks")
    store_id = make_store(api)
    make_profile(api, store_id, email="warm@example.com")  # the store is known from here
    statements.clear()
    make_profile(api, store_id, email="a@example.com", phone="+14155550100")
    assert not [s for s in statements if "pg_advisory_xact_lock" in s], statements
    url = f"{STORES}/{store_id}/IdentityResolutionSettings"
    settings = api.get(url).json()
    for config in settings["identifierConfigs"]:
        if config["idType"] == "phone":
            config["enforceUnique"] = False
    assert api.put(url, json=settings).status_code < 300
    statements.clear()
    make_profile(api, store_id, email="b@example.com", phone="+14155550101")
    assert [s for s in statements if "pg_advisory_xact_lock" in s], statements
    statements.clear()
    make_profile(api, store_id, email="c@example.com")  # email alone is still unique
    assert not [s for s in statements if "pg_advisory_xact_lock" in s], statements
