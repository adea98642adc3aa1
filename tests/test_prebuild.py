"""Imports whose batches a second process builds ahead (ingest.prebuild) end
exactly as the same imports written in one process: the same counts, report
and stored profiles, whatever mix of new, repeated, held, bridging and bad
rows the file has."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from convmem.ingest import prebuild
from convmem.ingest.csv_source import SourceError
from convmem.ingest.loading import live_schema
from convmem.kit.db import Database
from convmem.profiles import trait_values
from convmem.profiles.models import ProfileIdentifier
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import make_profile, make_store
from tests.test_imports import report, run_import

# Batches of 7 rows: groups, held identifiers and bad rows in several batches.
ROWS = [
    "email,phone,first,city",
    "p1@example.com,+14155550101,One,Oslo",
    "p1@example.com,,One again,",  # the same person in the same batch
    "held@example.com,,Now,Lima",  # a stored profile's email: an update
    "a@example.com,+14155550199,Bridge,",  # two stored profiles: a merge
    "not an email,,Bad,",  # fails alone
    ",,Nobody,",  # no identifier
    "  P2@Example.com ,(415) 555-0102,Two,Rome",  # trimmed and normalized
    "  P2@Example.com ,(415) 555-0102,Two,Rome",  # the same again (next batch): unchanged
    "p3@example.com,+14155550101,Three,",  # p1's phone: joins p1 across batches
    "p4@example.com,,\\N,Kyiv",  # a removal in a new profile
    "held@example.com,+14155550104,Again,",  # held, with a new phone
    *[f"bulk{n}@example.com,+1415556{n:04d},B{n},X" for n in range(20)],
    "bulk19@example.com,+14155560019,B19,X",  # the same in the same batch: unchanged
    "bulk3@example.com,,B3 again,Y",  # an earlier batch's new profile
]


def _stored(db: Database, store_id: str) -> set[tuple[Any, ...]]:
    """Each profile as (its identifiers, its trait values): ids left out."""
    with db.transaction(write=False) as session:
        identifiers: dict[str, set[tuple[str, str]]] = {}
        for profile_id, id_type, value in session.execute(
            select(
                ProfileIdentifier.profile_id, ProfileIdentifier.id_type, ProfileIdentifier.value
            ).where(ProfileIdentifier.store_id == store_id)
        ):
            identifiers.setdefault(profile_id, set()).add((id_type, value))
        values: dict[str, set[tuple[str, Any]]] = {}
        for value in trait_values.of(session, store_id, list(identifiers)):
            values.setdefault(value.profile_id, set()).add((value.trait_key, value.value))
    return {
        (frozenset(keys), frozenset(values.get(profile_id, ())))
        for profile_id, keys in identifiers.items()
    }


def test_a_file_built_ahead_imports_as_it_does_in_one_process(
    api: Api, db: Database, settings: Settings
) -> None:
    if not db.is_sqlite:
        pytest.skip("batches are built ahead on SQLite only")
    data = ("\n".join(ROWS) + "\n").encode()
    runs = []
    for threshold in (0, 1 << 40):  # built ahead; in one process
        store_id = make_store(api)
        make_profile(api, store_id, email="held@example.com", firstName="Old")
        make_profile(api, store_id, email="a@example.com")
        make_profile(api, store_id, phone="+14155550199")
        run_settings = settings.model_copy(
            update={"import_prebuild_bytes": threshold, "import_batch_size": 7}
        )
        status = run_import(api, db, run_settings, store_id, data)
        lines = report(api, store_id, status["importId"])
        runs.append((store_id, status, lines))
    (built_store, built, built_lines), (plain_store, plain, plain_lines) = runs
    assert built["status"] == plain["status"] == "COMPLETED", (built, plain)
    assert built["counts"] == plain["counts"]
    assert built["counts"]["merged"] == 1 and built["counts"]["unchanged"] == 2
    assert built["summary"] == plain["summary"]
    assert built_lines == plain_lines
    assert _stored(db, built_store) == _stored(db, plain_store)


# -- the builder process and its receiver ----------------------------------------

MAPPINGS = [("email", "Contact", "email"), ("first", "Contact", "firstName")]


def _builder(
    api: Api, db: Database, tmp_path: Path, body: bytes, batch_size: int = 2
) -> prebuild.Builder:
    if not db.is_sqlite:
        pytest.skip("batches are built ahead on SQLite only")
    store_id = make_store(api)
    with db.transaction(write=False) as session:
        schema = live_schema(session, account_sid=api.sid, store_id=store_id, cache={})
    assert schema is not None
    path = tmp_path / "people.csv"
    path.write_bytes(body)
    return prebuild.Builder(path, MAPPINGS, schema, store_id, start_row=1, batch_size=batch_size)


def _csv(rows: list[str]) -> bytes:
    return ("email,first\n" + "\n".join(rows) + "\n").encode()


def test_the_builder_hands_over_every_batch_in_order(
    api: Api, db: Database, tmp_path: Path
) -> None:
    rows = [f"p{n}@example.com,P{n}" for n in range(7)]
    builder = _builder(api, db, tmp_path, _csv(rows))
    try:
        batches = list(builder)
    finally:
        builder.close()
    assert [b.rows for b in batches] == [2, 2, 2, 1]
    assert [b.last_row for b in batches] == [3, 5, 7, 8]
    emails = [row[3] for b in batches for row in b.built[2]]
    assert emails == [f"p{n}@example.com" for n in range(7)]


def test_a_file_that_stops_being_csv_raises_where_the_reading_stopped(
    api: Api, db: Database, tmp_path: Path
) -> None:
    # The bad byte past the first megabyte (text is decoded a megabyte at a
    # time): the batches before it are handed over, then the error.
    rows = [f"p{n}@example.com,P{n}" for n in range(60_000)]
    body = _csv(rows) + b"c@example.com,\xff\n"
    builder = _builder(api, db, tmp_path, body, batch_size=10_000)
    seen = []
    try:
        with pytest.raises(SourceError, match="not UTF-8"):
            for built in builder:
                seen.append(built.rows)
    finally:
        builder.close()
    assert seen and set(seen) == {10_000}, seen


def test_a_builder_that_dies_fails_the_iteration_instead_of_hanging(
    api: Api, db: Database, tmp_path: Path
) -> None:
    rows = [f"p{n}@example.com,P{n}" for n in range(50)]
    builder = _builder(api, db, tmp_path, _csv(rows))
    try:
        batches = iter(builder)
        next(batches)
        builder._process.kill()  # the queue holds a few batches built ahead, then nothing
        with pytest.raises(RuntimeError, match="builder process died"):
            for _ in batches:
                pass
    finally:
        builder.close()


def test_closing_a_builder_mid_file_stops_its_receiver(
    api: Api, db: Database, tmp_path: Path
) -> None:
    rows = [f"p{n}@example.com,P{n}" for n in range(50)]
    spool = prebuild.spool_dir(tmp_path / "people.csv")
    spool.mkdir()
    (spool / "1.batch").write_bytes(b"a killed run's batch")  # wiped at the start
    builder = _builder(api, db, tmp_path, _csv(rows))
    assert next(iter(builder)).last_row == 3
    time.sleep(0.5)  # the rest is built: the receiver waits to hand over a batch
    builder.close()
    deadline = time.monotonic() + 5
    while any(t.name == "convmem-import-receiver" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the receiver thread outlived close()"
        time.sleep(0.05)
    assert not builder._process.is_alive()
    assert not spool.exists()  # the batches built ahead and not taken go too
