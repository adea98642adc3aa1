"""A worker killed (SIGKILL) in the middle of a large import: another worker
finishes it, and every row is applied exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from convmem.imports.models import ProfileImport
from convmem.kit.db import Database
from convmem.profiles.models import Profile
from tests.test_worker_crash import job_cluster, op_row

ROWS = 12_000


def people_csv() -> tuple[bytes, dict[str, str]]:
    """Rows where every 10th repeats an earlier person's email with a new name;
    returns the file and each email's expected final first name."""
    lines = ["email,first"]
    expected: dict[str, str] = {}
    for n in range(ROWS):
        person = n - 5 if n % 10 == 9 else n
        email = f"p{person}@example.com"
        lines.append(f"{email},name{n}")
        expected[email] = f"name{n}"
    return ("\n".join(lines) + "\n").encode(), expected


@pytest.mark.parametrize(
    ("backend_name", "prebuild"),
    [("sqlite", False), ("sqlite", True), ("postgresql", False)],
    ids=["sqlite", "sqlite-prebuilt", "postgresql"],
)
def test_killed_import_resumes_exactly_once(
    backend_name: str, prebuild: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """With `prebuild`, a second process builds the batches (ingest.prebuild):
    it goes away with the worker that was killed."""
    # A threshold of 0 builds every import ahead; the default leaves this small file alone.
    env = {"CONVMEM_IMPORT_BATCH_SIZE": "40"}
    if prebuild:
        env["CONVMEM_IMPORT_PREBUILD_BYTES"] = "0"
    with job_cluster(backend_name, tmp_path, request) as cluster:
        client, db = cluster.client, cluster.db
        store_id = cluster.new_store(f"import-crash-{backend_name}")
        data, expected = people_csv()
        created = client.post(
            f"/v1/Stores/{store_id}/Profiles/Imports",
            json={
                "filename": "people.csv",
                "fileSize": len(data),
                "columnMappings": [
                    {"columnName": "email", "traitGroup": "Contact", "traitName": "email"},
                    {"columnName": "first", "traitGroup": "Contact", "traitName": "firstName"},
                ],
            },
        ).json()
        import_id = created["importId"]
        response = client.put(created["url"], content=data, auth=None)
        assert response.status_code == 200, response.text
        status_url = f"/v1/Stores/{store_id}/Profiles/Imports/{import_id}"
        op_id = _operation_of(db, import_id)

        first = cluster.start_worker(**env)
        cluster.wait(op_id, lambda op: (op.checkpoint or {}).get("row", 0) >= ROWS // 4, 60)
        builders = _children(first.pid)
        assert bool(builders) == prebuild, builders
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the import finished before the worker was killed"
        done_at_kill = killed.checkpoint["row"]  # type: ignore[index]
        assert done_at_kill < ROWS
        mid = client.get(status_url).json()
        assert mid["status"] == "PROCESSING"
        assert 0 < mid["progress"] < 1

        # The killed worker's builder notices and exits instead of lingering.
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in builders):
            assert time.monotonic() < deadline, (
                f"builder processes {builders} outlived their worker"
            )
            time.sleep(0.2)
        cluster.start_worker(**env)
        cluster.wait(op_id, lambda op: op.status == "COMPLETED", 120)
        status = client.get(status_url).json()
        assert status["status"] == "COMPLETED", status
        counts = status["counts"]
        people = len(expected)
        # A batch applied twice would show up as extra rows or as unchanged ones.
        assert counts == {
            "rows": ROWS,
            "processed": ROWS,
            "created": people,
            "updated": ROWS - people,
            "merged": 0,
            "unchanged": 0,
            "failed": 0,
        }
        with db.transaction(write=False) as session:
            profiles = session.scalar(
                select(func.count()).select_from(Profile).where(Profile.store_id == store_id)
            )
        assert profiles == people
        for email in ("p0@example.com", "p4@example.com", f"p{ROWS - 6}@example.com"):
            (profile_id,) = client.post(
                f"/v1/Stores/{store_id}/Profiles/Lookup", json={"idType": "email", "value": email}
            ).json()["profiles"]
            traits = client.get(f"/v1/Stores/{store_id}/Profiles/{profile_id}").json()["traits"]
            assert traits["Contact"]["firstName"] == expected[email]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _operation_of(db: Database, import_id: str) -> str:
    """The import's job (the API does not show it)."""
    with db.transaction(write=False) as session:
        row = session.scalar(select(ProfileImport).where(ProfileImport.id == import_id))
        assert row is not None
        return row.operation_id
