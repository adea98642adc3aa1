"""Property-based tests of identity resolution (hypothesis).

The rules as a pure function, and the whole write path on a real SQLite file:
whatever the order of the records and however they are split into batches, the
profiles that result are the connected components of the records' identifiers,
each identifier lives on exactly one canonical profile, and every merge went
into the earliest profile."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from convmem import migrate, wiring
from convmem.identity.resolution import IdConfig, Key, plan
from convmem.kit.db import Database
from convmem.profiles import engine, store_schema
from convmem.profiles.models import Profile, ProfileIdentifier
from convmem.profiles.rules import Record
from convmem.stores import service as stores
from convmem.stores.schemas import StoreCreate
from tests.invariants import identity_violations

CONFIGS = {"email": IdConfig("email"), "phone": IdConfig("phone")}
RULES = ["email", "phone"]
EMAILS = [f"e{n}@x.io" for n in range(6)]
PHONES = [f"+1415555{n:04d}" for n in range(6)]

keys = st.one_of(
    st.sampled_from(EMAILS).map(lambda v: ("email", v)),
    st.sampled_from(PHONES).map(lambda v: ("phone", v)),
)
records = st.lists(st.lists(keys, min_size=1, max_size=3, unique=True), min_size=1, max_size=12)
PROFILES = [f"mem_profile_0{n:025d}" for n in range(6)]


@given(
    batch=records,
    holders=st.dictionaries(
        st.sampled_from(EMAILS).map(lambda v: ("email", v)),
        st.sets(st.sampled_from(PROFILES), min_size=1, max_size=2),
        max_size=4,
    ),
    anchors=st.lists(st.one_of(st.none(), st.sampled_from(PROFILES)), min_size=12, max_size=12),
)
def test_plan_partitions_records_keeps_anchors_and_picks_the_earliest(
    batch: list[list[Key]], holders: dict[Key, set[str]], anchors: list[str | None]
) -> None:
    anchors = anchors[: len(batch)]
    groups = plan(batch, anchors, holders, CONFIGS, RULES)
    seen = sorted(i for g in groups for i in g.records)
    assert seen == list(range(len(batch)))  # every record in exactly one group
    for group in groups:
        assert group.profiles == sorted(set(group.profiles))
        if group.profiles:
            assert group.canonical == min(group.profiles)
            assert set(group.merged) == set(group.profiles) - {group.canonical}
        for i in group.records:
            if anchors[i] is not None:
                assert anchors[i] in group.profiles
            for key in batch[i]:
                assert set(holders.get(key, ())) <= set(group.profiles)
    # Records sharing an identifier are always in the same group.
    group_of = {i: n for n, g in enumerate(groups) for i in g.records}
    for i, a in enumerate(batch):
        for j, b in enumerate(batch):
            if set(a) & set(b):
                assert group_of[i] == group_of[j]


def components(batch: list[list[Key]]) -> set[frozenset[Key]]:
    """The identifiers that must end on one profile: connected by records."""
    parent: dict[Key, Key] = {}

    def find(key: Key) -> Key:
        parent.setdefault(key, key)
        while parent[key] != key:
            key = parent[key]
        return key

    for record in batch:
        for key in record[1:]:
            parent[find(key)] = find(record[0])
        find(record[0])
    groups: dict[Key, set[Key]] = {}
    for key in list(parent):
        groups.setdefault(find(key), set()).add(key)
    return {frozenset(g) for g in groups.values()}


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("properties") / "convmem.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    yield db
    db.dispose()


def new_store(db: Database) -> str:
    account = "AC" + secrets.token_hex(16)
    from convmem.accounts import service as accounts

    with db.transaction() as session:
        accounts.create_account(session, sid=account)
        store, _ = stores.create(
            session,
            account_sid=account,
            data=StoreCreate(displayName=f"p{secrets.token_hex(4)}"),
            max_stores=1,
            hooks=wiring.hooks(),
        )
    return store.id


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=records, data=st.data())
def test_any_order_and_batching_ends_in_the_same_profiles(
    sqlite_db: Database, batch: list[list[Key]], data: st.DataObject
) -> None:
    store_id = new_store(sqlite_db)
    order = data.draw(st.permutations(range(len(batch))), label="order")
    cuts = sorted(
        data.draw(st.sets(st.integers(1, max(1, len(batch) - 1)), max_size=4), label="cuts")
    )
    shuffled = [batch[i] for i in order]
    bounds = [0, *[c for c in cuts if c < len(shuffled)], len(shuffled)]
    for start, end in itertools.pairwise(bounds):
        with sqlite_db.transaction() as session:
            ref = stores.get_active(
                session, account_sid=_owner(sqlite_db, store_id), store_id=store_id
            )
            schema = store_schema.load(session, ref)
            chunk = [Record(keys=list(keys)) for keys in shuffled[start:end]]
            engine.write(session, store_id, schema, chunk)

    assert identity_violations(sqlite_db, store_id) == []
    with sqlite_db.transaction(write=False) as session:
        rows = session.execute(
            select(
                ProfileIdentifier.profile_id, ProfileIdentifier.id_type, ProfileIdentifier.value
            ).where(ProfileIdentifier.store_id == store_id)
        ).all()
        aliases = session.execute(
            select(Profile.id, Profile.merged_into).where(
                Profile.store_id == store_id, Profile.merged_into.is_not(None)
            )
        ).all()
    by_profile: dict[str, set[Key]] = {}
    for profile_id, id_type, value in rows:
        by_profile.setdefault(profile_id, set()).add((id_type, value))
    assert {frozenset(v) for v in by_profile.values()} == components(batch)
    # Every merge went into the earlier profile.
    for alias, canonical in aliases:
        assert canonical < alias


def _owner(db: Database, store_id: str) -> str:
    from convmem.stores.models import Store

    with db.transaction(write=False) as session:
        store = session.get(Store, store_id)
        assert store is not None
        return store.account_sid
