"""A worker process killed in the middle of a job: another finishes it, once."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from convmem.kit.db import Database
from convmem.operations.models import Operation
from tests.live import ACCOUNT_SID, AUTH_TOKEN, start_server, start_worker

JOB_ENV = {
    "CONVMEM_JOB_BATCH_SIZE": "1",  # one row per transaction: a long, fine-grained job
    "CONVMEM_JOB_LEASE_SECONDS": "1.5",
    "CONVMEM_JOB_POLL_SECONDS": "0.1",
}


def op_row(db: Database, op_id: str) -> Operation:
    with db.transaction(write=False) as session:
        op = session.get(Operation, op_id)
        assert op is not None
        return op


def count_rows(db: Database, store_id: str) -> int:
    from sqlalchemy import func, select

    from convmem.stores.repository import store_scoped_tables

    total = 0
    with db.transaction(write=False) as session:
        for table in store_scoped_tables():
            total += int(
                session.scalar(
                    select(func.count()).select_from(table).where(table.c.store_id == store_id)
                )
                or 0
            )
    return total


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_killed_worker_job_is_resumed_and_completed_exactly_once(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend_name == "postgresql" else None
    server, base = start_server(tmp_path, database_url=url, workers=False, **JOB_ENV)
    workers = []
    db = Database(url or f"sqlite:///{tmp_path / 'convmem.db'}")
    try:
        client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
        request.addfinalizer(client.close)
        name = f"crash-{backend_name}-{secrets.token_hex(3)}"
        op = client.get(
            client.post("/v1/ControlPlane/Stores", json={"displayName": name}).headers["Location"]
        ).json()
        store_id = op["result"]["id"]
        traits = {f"t{n}": {"dataType": "STRING"} for n in range(95)}
        for g in range(40):
            response = client.post(
                f"/v1/ControlPlane/Stores/{store_id}/TraitGroups",
                json={"displayName": f"g{g}", "traits": traits},
            )
            assert response.status_code == 202
        initial = count_rows(db, store_id)
        # traits and groups, Contact's traits and group, identity settings
        assert initial == 40 * 95 + 40 + 9 + 1 + 1

        op_id = client.delete(f"/v1/ControlPlane/Stores/{store_id}").headers["Operation-Id"]
        first = start_worker(tmp_path, database_url=url, **JOB_ENV)
        workers.append(first)
        deadline = time.monotonic() + 60
        while (op_row(db, op_id).checkpoint or {}).get("batches", 0) < 300:
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.01)
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the job finished before the worker was killed"
        assert killed.lease_owner and f":{first.pid}:" in killed.lease_owner
        done_at_kill = killed.checkpoint["batches"]  # type: ignore[index]
        assert 0 < done_at_kill < initial

        second = start_worker(tmp_path, database_url=url, **JOB_ENV)
        workers.append(second)
        deadline = time.monotonic() + 120
        while op_row(db, op_id).status != "COMPLETED":
            assert time.monotonic() < deadline, second.output()
            time.sleep(0.1)

        final = op_row(db, op_id)
        assert final.attempts == 2
        assert final.lease_owner is None
        assert final.checkpoint is not None
        # One row per batch: every row was deleted in exactly one committed batch,
        # none counted twice, none lost across the crash.
        assert final.checkpoint["batches"] == initial
        assert sum(final.checkpoint["deleted"].values()) == initial
        assert count_rows(db, store_id) == 0
        status = client.get(f"/v1/ControlPlane/Operations/{op_id}").json()
        assert status["status"] == "COMPLETED"
        assert status["result"] == {"type": "RESOURCE_ID", "id": store_id}
        assert "job completed" not in first.output()
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        db.dispose()
