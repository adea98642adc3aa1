"""Datasets (convmem's extension) over HTTP on both backends: schemas read from
CSV, Parquet and SQL sources, refresh, deletion, and what a dataset may read."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from convmem.settings import Settings
from tests.conftest import Api
from tests.mapping_helpers import DATASETS, dataset_dir, make_dataset, write_csv


def types_of(dataset: dict[str, object]) -> dict[str, str]:
    return {f["name"]: f["dataType"] for f in dataset["fields"]}  # type: ignore[attr-defined, index]


def test_csv_schema_is_inferred(api: Api, settings: Settings) -> None:
    location = write_csv(
        settings,
        [
            {"email": "a@example.com", "n": "1", "x": "1.5", "ok": "true", "at": "2024-01-02"},
            {"email": "b@example.com", "n": "2", "x": "2", "ok": "false", "at": "2024-02-03"},
        ],
    )
    dataset = make_dataset(api, {"type": "CSV", "location": location}, name="crm")
    assert dataset["id"].startswith("tdi_dataset_")
    assert dataset["displayName"] == "crm"
    assert dataset["kind"] == "DATASET_WAREHOUSE"
    assert dataset["source"] == {"type": "CSV", "location": location}
    assert types_of(dataset) == {
        "email": "STRING",
        "n": "INTEGER",
        "x": "NUMBER",
        "ok": "BOOLEAN",
        "at": "DATE",
    }
    fetched = api.get(f"{DATASETS}/{dataset['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == dataset
    listed = api.get(DATASETS).json()
    assert [d["id"] for d in listed["datasets"]] == [dataset["id"]]
    assert listed["meta"]["key"] == "datasets"
    taken = api.post(DATASETS, json={"displayName": "crm", "source": dataset["source"]})
    assert taken.status_code == 409


def test_parquet_schema_comes_from_the_footer(api: Api, settings: Settings) -> None:
    table = pa.table(
        {
            "email": ["a@example.com"],
            "points": pa.array([10], pa.int64()),
            "ratio": [0.5],
            "vip": [True],
            "seen": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
            "tags": [["a", "b"]],
            "blob": pa.array([b"x"], pa.binary()),
        }
    )
    pq.write_table(table, dataset_dir(settings) / "people.parquet")
    dataset = make_dataset(
        api, {"type": "parquet", "location": "people.parquet"}, kind="dataset_cloudapp"
    )
    assert dataset["kind"] == "DATASET_CLOUDAPP"
    assert types_of(dataset) == {
        "email": "STRING",
        "points": "INTEGER",
        "ratio": "NUMBER",
        "vip": "BOOLEAN",
        "seen": "TIMESTAMP",
        "tags": "ARRAY",
        "blob": "OTHER",
    }


def test_sql_table_and_query(api: Api, settings: Settings) -> None:
    path = dataset_dir(settings) / "crm.db"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS contacts")
        conn.execute(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, score REAL, "
            "updated_at TIMESTAMP)"
        )
        conn.execute("INSERT INTO contacts VALUES (1, 'a@example.com', 1.5, '2024-01-01')")
    url = f"sqlite:///{path}"
    # A relative SQLite path is taken from the dataset directory.
    table = make_dataset(api, {"type": "SQL", "url": "sqlite:///crm.db", "table": "contacts"})
    assert types_of(table) == {
        "id": "INTEGER",
        "email": "STRING",
        "score": "NUMBER",
        "updated_at": "TIMESTAMP",
    }
    assert table["primaryKey"] == "id"
    query = make_dataset(
        api,
        {
            "type": "SQL",
            "url": url,
            "query": "select id, email as mail, '12:30' as t from contacts",
        },
    )
    assert types_of(query) == {"id": "INTEGER", "mail": "STRING", "t": "STRING"}
    missing = api.post(
        DATASETS,
        json={"displayName": "nope", "source": {"type": "SQL", "url": url, "table": "nope"}},
    )
    assert missing.status_code == 400
    assert "no table 'nope'" in missing.json()["message"]


def test_postgresql_table_with_masked_password(api: Api, pg_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(pg_url).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False)) as conn:
        conn.execute("DROP TABLE IF EXISTS crm_people")
        conn.execute(
            "CREATE TABLE crm_people (id bigint PRIMARY KEY, email text, vip boolean, "
            "tags text[], changed timestamptz)"
        )
    url = plain.set(password="s3cret").render_as_string(hide_password=False)
    dataset = make_dataset(api, {"type": "SQL", "url": url, "table": "crm_people"})
    assert types_of(dataset) == {
        "id": "INTEGER",
        "email": "STRING",
        "vip": "BOOLEAN",
        "tags": "ARRAY",
        "changed": "TIMESTAMP",
    }
    assert "s3cret" not in str(dataset)
    assert "***" in dataset["source"]["url"]
    assert "s3cret" not in api.get(f"{DATASETS}/{dataset['id']}").text
    assert "s3cret" not in api.get(DATASETS).text
    query = make_dataset(
        api, {"type": "SQL", "url": url, "query": "select id, email, vip from crm_people"}
    )
    assert types_of(query) == {"id": "INTEGER", "email": "STRING", "vip": "BOOLEAN"}


def test_refresh_reports_changes(api: Api, settings: Settings) -> None:
    location = write_csv(settings, [{"email": "a@example.com", "n": "1", "old": "x"}])
    dataset = make_dataset(api, {"type": "CSV", "location": location})
    write_csv(settings, [{"email": "a@example.com", "n": "one", "new": "1"}], name=location)
    response = api.post(f"{DATASETS}/{dataset['id']}/Refresh")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changes"] == {
        "added": ["new"],
        "removed": ["old"],
        "retyped": [{"name": "n", "from": "INTEGER", "to": "STRING"}],
    }
    assert body["dataset"]["version"] == 2
    assert types_of(body["dataset"]) == {"email": "STRING", "n": "STRING", "new": "INTEGER"}


def test_other_accounts_see_nothing(api: Api, other_api: Api, settings: Settings) -> None:
    location = write_csv(settings, [{"email": "a@example.com"}])
    dataset = make_dataset(api, {"type": "CSV", "location": location})
    for call in (
        other_api.get(f"{DATASETS}/{dataset['id']}"),
        other_api.post(f"{DATASETS}/{dataset['id']}/Refresh"),
        other_api.delete(f"{DATASETS}/{dataset['id']}"),
    ):
        assert call.status_code == 404
        assert call.json()["code"] == 520058
    assert other_api.get(DATASETS).json()["datasets"] == []
    assert api.get(f"{DATASETS}/tdi_dataset_bad").status_code == 400


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"type": "CSV", "location": "/etc/passwd"}, "CONVMEM_DATASET_DIRS"),
        ({"type": "CSV", "location": "../../../etc/passwd"}, "CONVMEM_DATASET_DIRS"),
        ({"type": "CSV", "location": "link-out.csv"}, "CONVMEM_DATASET_DIRS"),
        ({"type": "CSV", "location": "/nonexistent/outside.csv"}, "CONVMEM_DATASET_DIRS"),
        ({"type": "CSV", "location": "missing.csv"}, "no file at"),
        ({"type": "SQL", "url": "postgresql://u:pw@db.example.com/x", "table": "t"}, "SQL_HOSTS"),
        ({"type": "SQL", "url": "sqlite:////etc/hosts.db", "table": "t"}, "DATASET_DIRS"),
        (
            {"type": "SQL", "url": "postgresql://u@127.0.0.1/x?host=db.example.com", "table": "t"},
            "option 'host' is not allowed",
        ),
        ({"type": "SQL", "url": "sqlite:///crm.db?mode=rwc", "table": "t"}, "no options"),
        ({"type": "SQL", "url": "sqlite://", "table": "t"}, "database file"),
        ({"type": "SQL", "url": "not a url", "table": "t"}, "SQLAlchemy URL"),
        ({"type": "SQL", "url": "sqlite:///x.db"}, "exactly one of"),
        ({"type": "SQL", "url": "sqlite:///x.db", "table": "a; drop table b"}, "table"),
        ({"type": "CSV"}, "location"),
        ({"type": "XLSX", "location": "a.xlsx"}, "type"),
    ],
)
def test_sources_are_bounded_by_settings(
    api: Api, settings: Settings, source: dict[str, str], words: str
) -> None:
    outside = Path(os.environ.get("TMPDIR", "/tmp")) / "convmem-outside.csv"
    outside.write_text("email\na@example.com\n")
    link = dataset_dir(settings) / "link-out.csv"
    if not link.is_symlink():
        link.symlink_to(outside)
    response = api.post(DATASETS, json={"displayName": "bounded", "source": source})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert words in response.json()["message"]
    assert "pw@" not in response.text


def test_unreadable_files_are_refused(api: Api, settings: Settings) -> None:
    (dataset_dir(settings) / "bad.parquet").write_bytes(b"not parquet")
    response = api.post(
        DATASETS,
        json={"displayName": "bad", "source": {"type": "PARQUET", "location": "bad.parquet"}},
    )
    assert response.status_code == 400
    assert "Parquet file cannot be read" in response.json()["message"]
    (dataset_dir(settings) / "twice.csv").write_text("a,a\n1,2\n")
    response = api.post(
        DATASETS, json={"displayName": "twice", "source": {"type": "CSV", "location": "twice.csv"}}
    )
    assert response.status_code == 400
    assert "twice" in response.json()["message"]
