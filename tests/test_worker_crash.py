"""A worker process killed in the middle of a job: another finishes it, once."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from convmem.kit.db import Database
from convmem.operations.models import Operation
from tests.live import ACCOUNT_SID, AUTH_TOKEN, Process, start_server, start_worker

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


class JobCluster:
    """A live server without workers, workers started on demand (to be killed),
    an HTTP client and a direct database handle."""

    def __init__(self, tmp_path: Path, url: str | None, base: str) -> None:
        self.tmp_path, self.url = tmp_path, url
        self.db = Database(url or f"sqlite:///{tmp_path / 'convmem.db'}")
        self.client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=60)
        self.workers: list[Process] = []

    def new_store(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        location = self.client.post("/v1/ControlPlane/Stores", json={"displayName": name})
        store_id: str = self.client.get(location.headers["Location"]).json()["result"]["id"]
        return store_id

    def start_worker(self, **env: str) -> Process:
        worker = start_worker(self.tmp_path, database_url=self.url, **{**JOB_ENV, **env})
        self.workers.append(worker)
        return worker

    def wait(self, op_id: str, done: Callable[[Operation], bool], seconds: float) -> Operation:
        deadline = time.monotonic() + seconds
        while not done(op := op_row(self.db, op_id)):
            assert time.monotonic() < deadline, self.workers[-1].output()
            time.sleep(0.01)
        return op


@contextlib.contextmanager
def job_cluster(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[JobCluster]:
    url = request.getfixturevalue("pg_url") if backend_name == "postgresql" else None
    server, base = start_server(tmp_path, database_url=url, workers=False, **JOB_ENV)
    cluster = JobCluster(tmp_path, url, base)
    try:
        yield cluster
    finally:
        cluster.client.close()
        for worker in cluster.workers:
            worker.stop()
        server.stop()
        cluster.db.dispose()


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
    with job_cluster(backend_name, tmp_path, request) as cluster:
        client, db = cluster.client, cluster.db
        store_id = cluster.new_store(f"crash-{backend_name}")
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
        first = cluster.start_worker()
        cluster.wait(op_id, lambda op: (op.checkpoint or {}).get("batches", 0) >= 300, 60)
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the job finished before the worker was killed"
        assert killed.lease_owner and f":{first.pid}:" in killed.lease_owner
        done_at_kill = killed.checkpoint["batches"]  # type: ignore[index]
        assert 0 < done_at_kill < initial

        cluster.start_worker()
        final = cluster.wait(op_id, lambda op: op.status == "COMPLETED", 120)
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
