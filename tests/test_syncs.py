"""Syncs and pushed rows on both backends: full and incremental runs from CSV,
Parquet, SQLite and PostgreSQL sources into profiles, schema drift, bad rows,
schedules, and rows pushed to an INGRESS mapping."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from convmem.kit.db import Database
from convmem.operations.models import Operation
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import make_store, make_trait_group, profiles_url, run_jobs
from tests.mapping_helpers import (
    DATASETS,
    dataset_dir,
    dataset_mapping,
    make_dataset,
    make_mapping,
    mappings_url,
    report,
    run_sync,
    write_csv,
)


@pytest.fixture
def small_batches(settings: Settings) -> Settings:
    return settings.model_copy(update={"sync_batch_size": 2, "job_batch_size": 50})


def lookup(api: Api, store_id: str, id_type: str, value: str) -> list[str]:
    response = api.post(profiles_url(store_id, "Lookup"), json={"idType": id_type, "value": value})
    assert response.status_code == 200, response.text
    return list(response.json()["profiles"])


def contact(api: Api, store_id: str, profile_id: str) -> dict[str, Any]:
    response = api.get(profiles_url(store_id, profile_id))
    assert response.status_code == 200, response.text
    return dict(response.json()["traits"].get("Contact", {}))


ITEMS = [
    ("email", "Contact", "email"),
    ("phone", "Contact", "phone"),
    ("first", "Contact", "firstName"),
]


def test_full_sync_from_csv(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    rows = [
        {"email": "ada@example.com", "phone": "", "first": "Ada"},
        {"email": "", "phone": "(317) 555-1234", "first": "Bob"},
        {"email": "ADA@example.com", "phone": "+1 317 555 1234", "first": "Ada B."},  # bridges
        {"email": "", "phone": "", "first": "Nobody"},  # no identifier: fails, reported
        {"email": "cy@example.com", "phone": "nonsense", "first": "Cy"},  # bad phone
    ]
    dataset = make_dataset(api, {"type": "CSV", "location": write_csv(settings, rows)})
    mapping_id = make_mapping(api, store_id, dataset_mapping(dataset, ITEMS))
    sync = run_sync(api, db, small_batches, store_id, mapping_id, "FULL")
    assert sync["status"] == "COMPLETED", sync
    assert sync["mode"] == "FULL"
    assert sync["counts"] == {
        "read": 5,
        "created": 2,
        "updated": 0,
        "merged": 1,
        "unchanged": 0,
        "failed": 2,
        "warnings": sync["counts"]["warnings"],
    }
    assert sync["startedAt"] and sync["finishedAt"]
    (ada,) = lookup(api, store_id, "email", "ada@example.com")
    assert lookup(api, store_id, "phone", "+13175551234") == [ada]
    assert contact(api, store_id, ada)["firstName"] == "Ada B."
    lines = report(api, store_id, mapping_id, sync["id"])
    assert lines[0] == ["row", "column", "code", "message", "value", "severity"]
    errors = {(line[0], line[2]) for line in lines[1:] if line[5] == "error"}
    assert errors == {("4", "NO_IDENTIFIER"), ("5", "INVALID_IDENTIFIER")}
    # Run again: the same profiles (row 1's empty phone cell writes "" again,
    # then row 3 its number: updates, as an import of the same file does).
    again = run_sync(api, db, small_batches, store_id, mapping_id, "FULL")
    assert again["counts"]["read"] == 5
    assert again["counts"]["created"] == again["counts"]["merged"] == 0
    assert again["counts"]["updated"] + again["counts"]["unchanged"] == 3
    listed = api.get(mappings_url(store_id, mapping_id, "Syncs")).json()
    assert [s["id"] for s in listed["syncs"]] == [again["id"], sync["id"]]


def test_incremental_parquet_with_late_rows_sharing_a_cursor(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    t1, t2 = dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)
    path = dataset_dir(settings) / f"inc-{store_id[-6:]}.parquet"

    def write(rows: list[tuple[int, str, dt.datetime]]) -> None:
        pq.write_table(
            pa.table(
                {
                    "id": pa.array([r[0] for r in rows], pa.int64()),
                    "email": [r[1] for r in rows],
                    "changed": pa.array([r[2] for r in rows], pa.timestamp("us")),
                }
            ),
            path,
        )

    first = [(1, "a@example.com", t1), (2, "b@example.com", t1), (3, "c@example.com", t1)]
    write(first)
    dataset = make_dataset(api, {"type": "PARQUET", "location": path.name})
    body = dataset_mapping(
        dataset,
        [("email", "Contact", "email")],
        sync={"cursorField": "changed", "keyField": "id"},
    )
    mapping_id = make_mapping(api, store_id, body)
    sync = run_sync(api, db, small_batches, store_id, mapping_id)
    assert sync["mode"] == "INCREMENTAL"
    assert sync["counts"]["read"] == 3
    assert sync["counts"]["created"] == 3
    assert sync["cursor"] == [{"datetime": "2024-01-01T00:00:00"}, 3]
    # Late rows: two share the last cursor value (keys after the last one), one
    # is newer, and one sorts before the watermark (already seen: not read).
    write(
        [
            *first,
            (4, "d@example.com", t1),
            (5, "e@example.com", t1),
            (0, "old@example.com", t1),
            (6, "f@example.com", t2),
        ]
    )
    second = run_sync(api, db, small_batches, store_id, mapping_id)
    assert second["counts"]["read"] == 3, second
    assert second["counts"]["created"] == 3
    assert second["cursor"] == [{"datetime": "2024-01-02T00:00:00"}, 6]
    assert lookup(api, store_id, "email", "d@example.com")
    assert lookup(api, store_id, "email", "f@example.com")
    assert lookup(api, store_id, "email", "old@example.com") == []
    # FULL reads everything again.
    full = run_sync(api, db, small_batches, store_id, mapping_id, "FULL")
    assert full["counts"]["read"] == 7
    assert full["counts"]["created"] == 1
    third = run_sync(api, db, small_batches, store_id, mapping_id)
    assert third["counts"]["read"] == 0
    assert third["status"] == "COMPLETED"


def test_sync_from_sqlite_table_typed_values(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Crm",
        traits={"score": {"dataType": "NUMBER"}, "vip": {"dataType": "BOOLEAN"}},
    )
    path = dataset_dir(settings) / f"crm-{store_id[-6:]}.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, score REAL, "
            "vip BOOLEAN, seq INTEGER)"
        )
        conn.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?)",
            [(n, f"p{n}@example.com", n * 1.5, n % 2, n // 2) for n in range(1, 8)],
        )
    dataset = make_dataset(api, {"type": "SQL", "url": f"sqlite:///{path}", "table": "contacts"})
    body = dataset_mapping(
        dataset,
        [("email", "Contact", "email"), ("score", "Crm", "score"), ("vip", "Crm", "vip")],
        sync={"cursorField": "seq"},  # the key is the table's primary key
    )
    mapping_id = make_mapping(api, store_id, body)
    sync = run_sync(api, db, small_batches, store_id, mapping_id)
    assert sync["status"] == "COMPLETED", sync
    assert sync["counts"]["created"] == 7, (sync, report(api, store_id, mapping_id, sync["id"]))
    (p3,) = lookup(api, store_id, "email", "p3@example.com")
    traits = api.get(profiles_url(store_id, p3)).json()["traits"]
    assert traits["Crm"] == {"score": 4.5, "vip": True}
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO contacts VALUES (8, 'p8@example.com', 1, 0, 3)")
        conn.execute("UPDATE contacts SET score = 99, seq = 10 WHERE id = 1")
    later = run_sync(api, db, small_batches, store_id, mapping_id)
    assert later["counts"]["read"] == 2
    assert later["counts"]["created"] == 1
    assert later["counts"]["updated"] == 1


def test_sync_from_postgresql_table(
    api: Api, db: Database, small_batches: Settings, settings: Settings, pg_url: str
) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    store_id = make_store(api)
    table = f"people_{store_id[-8:]}"
    plain = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, email text, phone text, "
            "changed timestamptz NOT NULL)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s, %s)",
                [
                    (n, f"u{n}@example.com", None, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
                    for n in range(1, 6)
                ],
            )
    dataset = make_dataset(api, {"type": "SQL", "url": plain, "table": table})
    body = dataset_mapping(
        dataset,
        [("email", "Contact", "email"), ("phone", "Contact", "phone")],
        sync={"cursorField": "changed"},
    )
    mapping_id = make_mapping(api, store_id, body)
    sync = run_sync(api, db, small_batches, store_id, mapping_id)
    assert sync["status"] == "COMPLETED", sync
    assert sync["counts"]["created"] == 5
    with psycopg.connect(plain) as conn:
        conn.execute(
            f"INSERT INTO {table} VALUES (6, 'u6@example.com', '+13175550000', '2024-01-01Z')"
        )
        conn.execute(f"UPDATE {table} SET phone = '+13175550001', changed = now() WHERE id = 2")
    later = run_sync(api, db, small_batches, store_id, mapping_id)
    assert later["counts"]["read"] == 2
    assert later["counts"]["created"] == 1
    assert later["counts"]["updated"] == 1
    (u2,) = lookup(api, store_id, "email", "u2@example.com")
    assert lookup(api, store_id, "phone", "+13175550001") == [u2]


def test_schema_drift_fails_the_sync(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    location = write_csv(settings, [{"email": "a@example.com", "first": "A"}])
    dataset = make_dataset(api, {"type": "CSV", "location": location})
    mapping_id = make_mapping(
        api,
        store_id,
        dataset_mapping(
            dataset, [("email", "Contact", "email"), ("first", "Contact", "firstName")]
        ),
    )
    write_csv(settings, [{"email": "a@example.com", "given": "A"}], name=location)
    sync = run_sync(api, db, small_batches, store_id, mapping_id)
    assert sync["status"] == "FAILED"
    assert "field 'first' is gone" in sync["message"]
    assert lookup(api, store_id, "email", "a@example.com") == []


def test_runs_that_cannot_start(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    location = write_csv(settings, [{"email": "a@example.com"}])
    dataset = make_dataset(api, {"type": "CSV", "location": location})
    mapping_id = make_mapping(
        api, store_id, dataset_mapping(dataset, [("email", "Contact", "email")])
    )
    syncs = mappings_url(store_id, mapping_id, "Syncs")
    incremental = api.post(syncs, json={"mode": "INCREMENTAL"})
    assert incremental.status_code == 400
    assert "cursorField" in incremental.json()["message"]
    assert api.post(syncs, json={"mode": "SOMETIMES"}).status_code == 400
    first = api.post(syncs)
    assert first.status_code == 202
    busy = api.post(syncs)
    assert busy.status_code == 409
    assert first.json()["syncId"] in busy.json()["message"]
    run_jobs(db, settings=small_batches)
    api.patch(mappings_url(store_id, mapping_id), json={"isEnabled": False})
    disabled = api.post(syncs)
    assert disabled.status_code == 409
    assert "disabled" in disabled.json()["message"]
    ingress = make_mapping(
        api,
        store_id,
        {
            "displayName": "pushed",
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [{"expression": "mail", "traitGroup": "Contact", "traitName": "email"}],
            },
            "mappingFrom": {"type": "INGRESS", "columns": ["mail"]},
        },
    )
    assert api.post(mappings_url(store_id, ingress, "Syncs")).status_code == 409
    unknown = api.get(
        mappings_url(store_id, mapping_id, "Syncs", "mem_datasync_01h455vb4pex5vsknk084sn02q")
    )
    assert unknown.status_code == 404


def test_a_schedule_queues_the_next_run(
    api: Api, db: Database, small_batches: Settings, settings: Settings
) -> None:
    store_id = make_store(api)
    location = write_csv(settings, [{"email": "a@example.com"}])
    dataset = make_dataset(api, {"type": "CSV", "location": location})
    mapping_id = make_mapping(
        api,
        store_id,
        dataset_mapping(dataset, [("email", "Contact", "email")], sync={"intervalMinutes": 60}),
    )
    listed = api.get(mappings_url(store_id, mapping_id, "Syncs")).json()["syncs"]
    assert [(s["status"], s["trigger"]) for s in listed] == [("PENDING", "SCHEDULED")]
    # Not due for an hour; asking for a run now starts the scheduled one.
    run_jobs(db, settings=small_batches)
    assert api.get(mappings_url(store_id, mapping_id, "Syncs")).json()["syncs"][0]["status"] == (
        "PENDING"
    )
    started = api.post(mappings_url(store_id, mapping_id, "Syncs"))
    assert started.status_code == 202
    assert started.json()["syncId"] == listed[0]["id"]
    run_jobs(db, settings=small_batches)
    after = api.get(mappings_url(store_id, mapping_id, "Syncs")).json()["syncs"]
    assert [s["status"] for s in after] == ["PENDING", "COMPLETED"]
    with db.transaction(write=False) as session:
        due = session.scalar(
            select(Operation.run_after)
            .where(Operation.kind == "dataMapping.sync")
            .order_by(Operation.id.desc())
        )
    assert due is not None and due > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=55)


def test_pushed_rows(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Web", traits={"visits": {"dataType": "NUMBER"}})
    mapping_id = make_mapping(
        api,
        store_id,
        {
            "displayName": "web-signups",
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [
                    {"expression": "mail", "traitGroup": "Contact", "traitName": "email"},
                    {"expression": "tel", "traitGroup": "Contact", "traitName": "phone"},
                    {"expression": "name", "traitGroup": "Contact", "traitName": "firstName"},
                    {"expression": "visits", "traitGroup": "Web", "traitName": "visits"},
                ],
            },
            "mappingFrom": {"type": "INGRESS", "columns": ["mail", "tel", "name", "visits"]},
        },
    )
    url = f"/v1/Stores/{store_id}/DataMappings/{mapping_id}/Rows"
    response = api.post(
        url,
        json={
            "rows": [
                {"mail": "ada@example.com", "name": "Ada", "visits": 3},
                {"tel": "+13175551234", "name": "Bob", "visits": "4"},
                {"name": "Nobody"},
                {"mail": "x@example.com", "shoe": 42},
                {"mail": "cy@example.com", "visits": "many"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [(0, "created"), (1, "created"), (2, "failed"), (3, "failed"), (4, "failed")]
    assert body["results"][2]["error"]["code"] == "NO_IDENTIFIER"
    assert body["results"][3]["error"]["code"] == "UNKNOWN_COLUMN"
    assert body["results"][4]["error"]["code"] == "INVALID_VALUE"
    assert body["counts"]["read"] == 5
    assert body["counts"]["failed"] == 3
    ada = body["results"][0]["profileId"]
    bob = body["results"][1]["profileId"]
    assert api.get(profiles_url(store_id, bob)).json()["traits"]["Web"] == {"visits": 4}
    # A row joining both merges them; null deletes a trait; a repeat is unchanged.
    second = api.post(
        url,
        json={
            "rows": [
                {"mail": "ada@example.com", "tel": "(317) 555-1234", "visits": None},
                {"mail": "ada@example.com"},
            ]
        },
    ).json()
    merged = second["results"][0]
    assert merged["status"] == "merged"
    assert merged["profileId"] == min(ada, bob)
    assert merged["mergedProfileIds"] == [max(ada, bob)]
    assert second["results"][1]["status"] == "unchanged"
    traits = api.get(profiles_url(store_id, merged["profileId"])).json()["traits"]
    assert "Web" not in traits or "visits" not in traits["Web"]
    only_bad = api.post(url, json={"rows": [{"shoe": 1}]})
    assert only_bad.status_code == 200, only_bad.text
    assert only_bad.json()["results"][0]["status"] == "failed"
    assert api.post(url, json={"rows": []}).status_code == 400
    assert api.post(url, json={"rows": [{}] * 1001}).status_code == 400
    assert api.post(url, json={"rows": ["not an object"]}).status_code == 400
    api.patch(mappings_url(store_id, mapping_id), json={"isEnabled": False})
    assert api.post(url, json={"rows": [{"mail": "z@example.com"}]}).status_code == 409


def test_dataset_mappings_take_no_pushed_rows(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = make_dataset(
        api, {"type": "CSV", "location": write_csv(settings, [{"email": "a@example.com"}])}
    )
    mapping_id = make_mapping(
        api, store_id, dataset_mapping(dataset, [("email", "Contact", "email")])
    )
    url = f"/v1/Stores/{store_id}/DataMappings/{mapping_id}/Rows"
    response = api.post(url, json={"rows": [{"email": "a@example.com"}]})
    assert response.status_code == 409
    assert api.get(f"{DATASETS}/{dataset['id']}").status_code == 200


def test_disabling_a_mapping_stops_its_running_sync(
    api: Api, db: Database, settings: Settings
) -> None:
    import threading
    import time

    from convmem import wiring
    from convmem.operations.worker import Worker

    store_id = make_store(api)
    # Far more rows than the sync can write while the PATCH is under way:
    # it is stopped, not done, when the disable lands.
    rows = [{"email": f"stop{n}@example.com"} for n in range(30000)]
    dataset = make_dataset(api, {"type": "CSV", "location": write_csv(settings, rows)})
    mapping_id = make_mapping(
        api, store_id, dataset_mapping(dataset, [("email", "Contact", "email")])
    )
    started = api.post(mappings_url(store_id, mapping_id, "Syncs"))
    op_id, sync_id = started.headers["Operation-Id"], started.json()["syncId"]
    tiny = settings.model_copy(update={"sync_batch_size": 10})
    worker = Worker(db, tiny, wiring.jobs(tiny))
    thread = threading.Thread(target=lambda: [worker.run_once() for _ in range(3)])
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        with db.transaction(write=False) as session:
            op = session.get(Operation, op_id)
            assert op is not None
            done = int((op.checkpoint or {}).get("after") or 0)
        if done >= 100:
            break
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.005)
    api.patch(mappings_url(store_id, mapping_id), json={"isEnabled": False})
    thread.join(60)
    sync = api.get(mappings_url(store_id, mapping_id, "Syncs", sync_id)).json()
    assert sync["status"] == "FAILED", sync
    assert "disabled during the sync" in sync["message"]
    assert 100 <= sync["counts"]["read"] < len(rows)
    assert sync["counts"]["created"] == sync["counts"]["read"]


def test_hostile_input_on_the_extension_routes(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    mapping_id = make_mapping(
        api,
        store_id,
        {
            "displayName": "hostile",
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [{"expression": "mail", "traitGroup": "Contact", "traitName": "email"}],
            },
            "mappingFrom": {"type": "INGRESS", "columns": ["mail"]},
        },
    )
    rows = f"/v1/Stores/{store_id}/DataMappings/{mapping_id}/Rows"
    for body in (
        b'{"rows": [{"mail": 1180591620717411303424}]}',
        b'{"rows": [{"mail": "a\\u0000@example.com"}]}',
        b'{"rows": [{"mail": 1e999}]}',
        b'{"rows": "nope"}',
    ):
        response = api.post(rows, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == 520046
    nested = api.post(rows, json={"rows": [{"mail": {"deep": ["x"]}}]})
    assert nested.status_code == 200
    assert nested.json()["results"][0]["error"]["code"] == "INVALID_VALUE"
    for url in (
        f"{DATASETS}/%00",
        f"{DATASETS}?pageToken=garbage",
        f"{DATASETS}?pageSize=101",
        mappings_url(store_id, mapping_id, "Syncs") + "?pageToken=garbage",
        mappings_url(store_id, mapping_id, "Syncs", "%00"),
    ):
        response = api.get(url)
        assert response.status_code in (400, 404), (url, response.text)
    location = api.post(
        DATASETS,
        content=b'{"displayName": "x", "source": {"type": "CSV", "location": "a\\u0000.csv"}}',
        headers={"Content-Type": "application/json"},
    )
    assert location.status_code == 400


def test_concurrent_starts_queue_one_run(api: Api, settings: Settings) -> None:
    from tests.factories import race

    store_id = make_store(api)
    dataset = make_dataset(
        api, {"type": "CSV", "location": write_csv(settings, [{"email": "r@example.com"}])}
    )
    mapping_id = make_mapping(
        api, store_id, dataset_mapping(dataset, [("email", "Contact", "email")])
    )
    url = mappings_url(store_id, mapping_id, "Syncs")
    statuses = sorted(r.status_code for r in race(6, lambda _: api.post(url)))
    assert statuses == [202] + [409] * 5
    assert len(api.get(url).json()["syncs"]) == 1
