"""Every statement the data plane runs uses an index on a store of 100,000
profiles: none scans a profile table, so no request slows down as a store grows.

The statements are not listed by hand: they are captured while real requests
run, so a query added later is checked too."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from convmem.kit.db import Database
from tests.conftest import Api
from tests.factories import make_profile, make_store, profiles_url

PROFILES = 100_000
PROFILE_TABLES = ("profiles", "profile_trait_groups", "profile_identifiers", "profile_merges")
# Checked on SQLite only: they hold a few rows here, and PostgreSQL's cost-based
# planner rightly scans a few rows (the indexes are the same on both backends;
# SQLite's plan shows whether one serves each statement).
MEMORY_TABLES = (
    "observations",
    "observation_revisions",
    "observation_conversations",
    "conversation_summaries",
)
NOW = "2026-01-01 00:00:00.000000"
PRINT_PLANS = True


def fill_store(db: Database, store_id: str, count: int = PROFILES) -> None:
    """`count` profiles with an email, a phone and two traits each, in set-based SQL."""

    def pad(width: int) -> str:
        return f"printf('%0{width}d', n)" if db.is_sqlite else f"lpad(n::text, {width}, '0')"

    pid = f"'mem_profile_0' || {pad(25)}"
    if db.is_sqlite:
        series = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count) "
        source = "FROM s"
    else:
        series = ""
        source = "FROM generate_series(1, :count) AS s(n)"
    created = ":now" if db.is_sqlite else "CAST(:now AS TIMESTAMPTZ)"
    email = "'bulk' || n || '@example.com'"
    phone = f"'+1555' || {pad(7)}"
    stamp = ":now" if db.is_sqlite else "CAST(:now AS text)"
    obj, arr = (
        ("json_object", "json_array")
        if db.is_sqlite
        else ("jsonb_build_object", "jsonb_build_array")
    )
    statements = [
        f"{series}INSERT INTO profiles (store_id, id, merged_into, created_at, updated_at) "
        f"SELECT :store, {pid}, NULL, {created}, {created} {source}",
        f"{series}INSERT INTO profile_identifiers (store_id, profile_id, id_type, value, "
        "scope, sort_key, fuzzy, block_prefix, block_suffix, created_at) "
        f"SELECT :store, {pid}, 'email', {email}, '', 'row_' || n, false, 'bul', 'com', "
        f"{created} {source}",
        f"{series}INSERT INTO profile_identifiers (store_id, profile_id, id_type, value, "
        "scope, sort_key, fuzzy, block_prefix, block_suffix, created_at) "
        f"SELECT :store, {pid}, 'phone', {phone}, '', 'row_p' || n, false, '155', "
        f"'000', {created} {source}",
        f"{series}INSERT INTO profile_trait_groups (store_id, profile_id, group_name, traits) "
        f"SELECT :store, {pid}, 'Contact', {obj}('email', {arr}({email}, {stamp}, NULL), "
        f"'firstName', {arr}('Bulk' || n, {stamp}, NULL)) {source}",
    ]
    with db.transaction() as session:
        for statement in statements:
            session.execute(text(statement), {"store": store_id, "count": count, "now": NOW})
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


class Recorder:
    def __init__(self) -> None:
        self.statements: dict[str, Any] = {}

    def __call__(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if isinstance(params, list | tuple) and params and isinstance(params[0], dict | tuple):
            params = params[0]
        self.statements.setdefault(statement, params)


@pytest.fixture
def recorder(db: Database) -> Iterator[Recorder]:
    engines = [db.engine] + ([db.async_engine.sync_engine] if db.async_engine else [])
    recorder = Recorder()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", recorder)
    yield recorder
    for engine in engines:
        event.remove(engine, "before_cursor_execute", recorder)


def exercise(api: Api, store_id: str) -> None:
    """One of every data-plane request, against the big store."""
    url = profiles_url(store_id)
    ok = {200, 202}
    new = make_profile(api, store_id, email="fresh@example.com", phone="+14155550100")
    # Two identifiers held by two existing profiles: a merge.
    merged = api.post(
        url, json={"traits": {"Contact": {"email": "bulk5@example.com", "phone": "+15550000007"}}}
    )
    assert merged.status_code == 202
    existing = "mem_profile_0" + "5".rjust(25, "0")
    for response in (
        api.post(f"{url}/Lookup", json={"idType": "email", "value": "bulk77@example.com"}),
        api.get(f"{url}/{existing}"),
        api.get(f"{url}/{existing}?traitGroups=Contact"),
        api.patch(f"{url}/{new}", json={"traits": {"Contact": {"firstName": "F", "city": None}}}),
        api.get(f"{url}/{new}/Traits"),
        api.get(f"{url}/{existing}/Identifiers"),
        api.get(f"{url}/{existing}/Identifiers/email"),
        api.post(f"{url}/{new}/Identifiers", json={"idType": "email", "value": "n2@example.com"}),
        api.patch(
            f"{url}/{new}/Identifiers/email",
            json={"idType": "email", "oldValue": "n2@example.com", "newValue": "n3@example.com"},
        ),
        api.delete(f"{url}/{new}/Identifiers/email"),
        api.put(
            f"{url}/Bulk",
            json={
                "profiles": [
                    {"traits": {"Contact": {"email": f"bulk{n}@example.com", "city": "X"}}}
                    for n in range(100, 110)
                ]
            },
        ),
        api.delete(f"{url}/{new}"),
    ):
        assert response.status_code in ok, response.text
    memories(api, store_id, existing)
    first = api.get(url, params={"pageSize": 20})
    assert first.status_code == 200
    second = api.get(url, params={"pageSize": 20, "pageToken": first.json()["meta"]["nextToken"]})
    assert second.status_code == 200
    ascending = api.get(url, params={"pageSize": 20, "orderBy": "ASC"})
    assert ascending.status_code == 200


def memories(api: Api, store_id: str, profile_id: str) -> None:
    """One of every memory request."""
    url = profiles_url(store_id, profile_id)
    conversation = "conv_conversation_01h455vb4pex5vsknk084sn02q"
    item = {
        "content": "Asked about the refund",
        "source": "plan",
        "occurredAt": "2025-01-01T00:00:00Z",
    }
    assert api.post(f"{url}/Observations", json={"observations": [item]}).status_code == 202
    (observation,) = api.get(f"{url}/Observations").json()["observations"]
    one = f"{url}/Observations/{observation['id']}"
    summary = {
        "conversationId": conversation,
        "content": "Refund chat",
        "occurredAt": "2025-01-01T00:00:00Z",
    }
    for response in (
        api.get(f"{url}/Observations", params={"conversationId": conversation, "source": "plan"}),
        api.get(one),
        api.patch(one, json={"content": "Asked about the refund again"}),
        api.get(f"{one}/Revisions"),
        api.post(f"{url}/ConversationSummaries", json={"summaries": [summary]}),
        api.get(f"{url}/ConversationSummaries", params={"conversationId": conversation}),
        api.post(f"{url}/Recall", json={"query": "refund money"}),
        api.post(f"{url}/Recall", json={"beginDate": "2024-01-01T00:00:00Z"}),
        api.delete(one),
    ):
        assert response.status_code in (200, 202), response.text


def plan_of(db: Database, statement: str, params: Any) -> str:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.is_sqlite:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, params or ())
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + statement, params or None)
        return "\n".join(str(row[0]) for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


def big_tables(db: Database) -> tuple[str, ...]:
    return PROFILE_TABLES + MEMORY_TABLES if db.is_sqlite else PROFILE_TABLES


def full_scans(db: Database, plan: str) -> list[str]:
    """Plan lines that read a whole table, or a whole store of it (an index
    searched on store_id alone reads every row of the store)."""
    tables = "|".join(big_tables(db))
    if not db.is_sqlite and plan.startswith("Limit") and "Sort" not in plan:
        # An index read in key order that stops after a page: PostgreSQL picks
        # it when the filter keeps most rows (here, canonical profiles).
        return [line for line in plan.splitlines() if "Seq Scan" in line]
    if db.is_sqlite:
        lines = plan.splitlines()
        if any("VIRTUAL TABLE" in line for line in lines[1:]):
            # A full-text index that is not the outer loop runs its MATCH once per row.
            return [line for line in lines if "VIRTUAL TABLE" in line]
        patterns = [rf"^SCAN ({tables})\b", rf"^SEARCH ({tables}) .*\(store_id=\?\)$"]
    else:
        patterns = [rf"Seq Scan on ({tables})\b", r"Index Cond: \(\(store_id\)::text = [^)]*\)$"]
    return [
        line
        for line in plan.splitlines()
        if any(re.search(pattern, line.strip()) for pattern in patterns)
    ]


def test_every_data_plane_statement_uses_an_index(
    api: Api, db: Database, recorder: Recorder
) -> None:
    store_id = make_store(api)
    fill_store(db, store_id)
    recorder.statements.clear()
    exercise(api, store_id)
    checked = 0
    offenders = []
    for statement, params in recorder.statements.items():
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            continue
        if not any(table in statement for table in big_tables(db)):
            continue
        checked += 1
        plan = plan_of(db, statement, params)
        if full_scans(db, plan):
            offenders.append(f"{statement}\n  -> {plan}")
    if PRINT_PLANS:
        for statement, params in recorder.statements.items():
            if any(table in statement for table in big_tables(db)) and not statement.startswith(
                "INSERT"
            ):
                print(
                    statement[:300], "\n   ", plan_of(db, statement, params).replace("\n", "\n    ")
                )
    assert checked >= 15
    assert offenders == [], "\n\n".join(offenders)


def test_the_fill_helper_makes_resolvable_profiles(api: Api, db: Database) -> None:
    store_id = make_store(api)
    fill_store(db, store_id, count=50)
    found = api.post(
        f"{profiles_url(store_id)}/Lookup", json={"idType": "phone", "value": "+15550000042"}
    )
    assert found.json()["profiles"] == ["mem_profile_0" + "42".rjust(25, "0")]
    assert (
        dt.datetime.fromisoformat(
            api.get(profiles_url(store_id, found.json()["profiles"][0])).json()["createdAt"]
        ).year
        == 2026
    )
