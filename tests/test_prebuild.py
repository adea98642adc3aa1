"""Imports whose batches a second process builds ahead (ingest.prebuild) end
exactly as the same imports written in one process: the same counts, report
and stored profiles, whatever mix of new, repeated, held, bridging and bad
rows the file has."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

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
