"""A worker killed (SIGKILL) in the middle of a sync: another worker finishes
it, and every batch is applied exactly once."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from convmem.mappings.models import MappingSync
from convmem.profiles.models import Profile
from tests.test_worker_crash import job_cluster, op_row

ROWS = 12_000


def write_people(path: Path) -> dict[str, str]:
    """Rows where every 10th repeats an earlier person's email with a new name;
    returns each email's expected final first name."""
    emails, names, expected = [], [], {}
    for n in range(ROWS):
        person = n - 5 if n % 10 == 9 else n
        emails.append(f"p{person}@example.com")
        names.append(f"name{n}")
        expected[emails[-1]] = names[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Small row groups, so the resumed read skips whole groups and part of one.
    pq.write_table(pa.table({"email": emails, "first": names}), path, row_group_size=1000)
    return expected


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_killed_sync_resumes_exactly_once(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with job_cluster(backend_name, tmp_path, request) as cluster:
        client, db = cluster.client, cluster.db
        store_id = cluster.new_store(f"sync-crash-{backend_name}")
        expected = write_people(tmp_path / "datasets" / "people.parquet")
        dataset = client.post(
            "/v1/ControlPlane/Datasets",
            json={
                "displayName": f"people-{store_id[-6:]}",
                "source": {"type": "PARQUET", "location": "people.parquet"},
            },
        )
        assert dataset.status_code == 201, dataset.text
        created = client.post(
            f"/v1/ControlPlane/Stores/{store_id}/DataMappings",
            json={
                "displayName": "people",
                "mappingTo": {
                    "type": "TRAITS",
                    "mappings": [
                        {"expression": "email", "traitGroup": "Contact", "traitName": "email"},
                        {"expression": "first", "traitGroup": "Contact", "traitName": "firstName"},
                    ],
                },
                "mappingFrom": {"type": "DATASET", "datasetId": dataset.json()["id"]},
            },
        )
        mapping_id = client.get(created.headers["Location"]).json()["result"]["id"]
        started = client.post(
            f"/v1/ControlPlane/Stores/{store_id}/DataMappings/{mapping_id}/Syncs",
            json={"mode": "FULL"},
        )
        assert started.status_code == 202, started.text
        op_id, sync_id = started.headers["Operation-Id"], started.json()["syncId"]
        status_url = f"/v1/ControlPlane/Stores/{store_id}/DataMappings/{mapping_id}/Syncs/{sync_id}"

        first = cluster.start_worker(CONVMEM_SYNC_BATCH_SIZE="40")
        cluster.wait(
            op_id, lambda op: int((op.checkpoint or {}).get("after") or 0) >= ROWS // 4, 60
        )
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the sync finished before the worker was killed"
        assert int(killed.checkpoint["after"]) < ROWS  # type: ignore[index]
        mid = client.get(status_url).json()
        assert mid["status"] == "PROCESSING"

        cluster.start_worker(CONVMEM_SYNC_BATCH_SIZE="40")
        cluster.wait(op_id, lambda op: op.status == "COMPLETED", 120)
        status = client.get(status_url).json()
        assert status["status"] == "COMPLETED", status
        people = len(expected)
        # A batch applied twice would show up as extra rows or as unchanged ones.
        assert status["counts"] == {
            "read": ROWS,
            "created": people,
            "updated": ROWS - people,
            "merged": 0,
            "unchanged": 0,
            "failed": 0,
            "warnings": 0,
        }
        with db.transaction(write=False) as session:
            profiles = session.scalar(
                select(func.count()).select_from(Profile).where(Profile.store_id == store_id)
            )
            sync = session.get(MappingSync, (store_id, sync_id))
            assert sync is not None and sync.status == "COMPLETED"
        assert profiles == people
        for email in ("p0@example.com", "p4@example.com", f"p{ROWS - 6}@example.com"):
            (profile_id,) = client.post(
                f"/v1/Stores/{store_id}/Profiles/Lookup", json={"idType": "email", "value": email}
            ).json()["profiles"]
            traits = client.get(f"/v1/Stores/{store_id}/Profiles/{profile_id}").json()["traits"]
            assert traits["Contact"]["firstName"] == expected[email]
