"""The job machinery against a real database: leases, retries, checkpoints."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from convmem import wiring
from convmem.kit.db import Database, utcnow
from convmem.operations import repository, service
from convmem.operations.jobs import JobContext, JobFailed, JobHandlers, LeaseLost
from convmem.operations.models import Operation
from convmem.operations.worker import Worker
from convmem.settings import Settings
from convmem.traits.models import TraitDefinition
from convmem.traits.rules import TraitSpec
from convmem.traits.service import _definition
from tests.conftest import Api
from tests.factories import make_store, make_trait_group

# Jobs of this module, handed to the workers with the real ones.
FLAKY_FAILURES: dict[str, int] = {}
CRASH_AT_STEP: dict[str, int] = {}


def flaky(ctx: JobContext) -> None:
    left = FLAKY_FAILURES.get(ctx.op_id, 0)
    if left:
        FLAKY_FAILURES[ctx.op_id] = left - 1
        raise RuntimeError("transient trouble")


def broken(ctx: JobContext) -> None:
    raise JobFailed("the input is unusable", code=520046, title="Bad input")


def add_traits(ctx: JobContext) -> None:
    """Adds payload['count'] traits, one per step, resuming from the checkpoint."""
    store_id, group = ctx.payload["storeId"], ctx.payload["group"]
    while ctx.checkpoint.get("done", 0) < ctx.payload["count"]:
        n = ctx.checkpoint.get("done", 0)
        with ctx.step() as session:
            session.add(_definition(store_id, group, f"t{n}", TraitSpec("STRING")))
            session.flush()
            if CRASH_AT_STEP.get(ctx.op_id) == n:
                del CRASH_AT_STEP[ctx.op_id]
                raise RuntimeError("crash in the middle of a step")
            ctx.checkpoint["done"] = n + 1


JOBS: JobHandlers = {
    **wiring.jobs(Settings()),
    "tests.flaky": flaky,
    "tests.broken": broken,
    "tests.add_traits": add_traits,
}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_backoff_seconds": 0.0, "job_lease_seconds": 5.0})


def enqueue(
    db: Database, kind: str, *, payload: dict[str, object] | None = None, attempts: int = 5
) -> str:
    with db.transaction() as session:
        op = service.enqueue(
            session,
            account_sid="AC" + secrets.token_hex(16),
            store_id=None,
            kind=kind,
            payload=payload or {},
            max_attempts=attempts,
        )
    return op.id


def load(db: Database, op_id: str) -> Operation:
    with db.transaction(write=False) as session:
        op = session.get(Operation, op_id)
        assert op is not None
        return op


def drain(worker: Worker, limit: int = 50) -> None:
    for _ in range(limit):
        if not worker.run_once():
            return


@pytest.fixture(autouse=True)
def _only_this_tests_jobs(db: Database) -> Iterator[None]:
    # Jobs left runnable by other tests must not interfere with run_once() here.
    drain(Worker(db, Settings(), JOBS))
    yield


def test_transient_failures_retry_with_backoff(db: Database, settings: Settings) -> None:
    op_id = enqueue(db, "tests.flaky")
    FLAKY_FAILURES[op_id] = 2
    worker = Worker(db, settings.model_copy(update={"job_backoff_seconds": 60.0}), JOBS)
    assert worker.run_once()
    op = load(db, op_id)
    assert op.status == "PENDING"
    assert op.attempts == 1
    assert op.error and "transient trouble" in op.error["detail"]
    assert op.run_after > utcnow() + dt.timedelta(seconds=55)  # first delay: 60 s
    assert not worker.run_once()  # not due yet

    with db.transaction() as session:
        session.get(Operation, op_id).run_after = utcnow()  # type: ignore[union-attr]
    assert worker.run_once()
    op = load(db, op_id)
    assert op.run_after > utcnow() + dt.timedelta(seconds=115)  # doubled: 120 s
    with db.transaction() as session:
        session.get(Operation, op_id).run_after = utcnow()  # type: ignore[union-attr]
    assert worker.run_once()
    op = load(db, op_id)
    assert op.status == "COMPLETED"
    assert op.attempts == 3
    assert op.error is None


def test_gives_up_after_max_attempts(db: Database, fast: Settings) -> None:
    op_id = enqueue(db, "tests.flaky", attempts=2)
    FLAKY_FAILURES[op_id] = 5
    drain(Worker(db, fast, JOBS))
    op = load(db, op_id)
    assert op.status == "FAILED"
    assert op.attempts == 2
    assert op.completed_at is not None
    assert op.error is not None and "Failed after 2 attempts" in op.error["detail"]


def test_permanent_failure_and_unknown_kind(db: Database, fast: Settings) -> None:
    broken_id = enqueue(db, "tests.broken")
    unknown_id = enqueue(db, "tests.no_such_kind")
    drain(Worker(db, fast, JOBS))
    broken_op = load(db, broken_id)
    assert broken_op.status == "FAILED" and broken_op.attempts == 1
    assert broken_op.error == {
        "type": "https://www.twilio.com/docs/api/errors/520046",
        "title": "Bad input",
        "code": 520046,
        "detail": "the input is unusable",
    }
    assert load(db, unknown_id).status == "FAILED"


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_write(
    db: Database, fast: Settings
) -> None:
    op_id = enqueue(db, "tests.flaky")
    now = utcnow()
    # Worker "ghost" claims the job and then dies (never heartbeats).
    with db.transaction() as session:
        claimed = repository.claim_next(
            session,
            owner="ghost",
            now=now,
            lease_until=now + dt.timedelta(seconds=0.2),
            skip_locked=not db.is_sqlite,
        )
        assert claimed is not None and claimed.id == op_id
    live = Worker(db, fast, JOBS)
    assert not live.run_once()  # lease still valid
    with db.transaction() as session:
        session.get(Operation, op_id).lease_expires_at = utcnow() - dt.timedelta(seconds=1)  # type: ignore[union-attr]
    assert live.run_once()
    op = load(db, op_id)
    assert op.status == "COMPLETED"
    assert op.attempts == 2
    # The ghost wakes up: its writes are refused.
    ghost = JobContext(
        db,
        op_id=op_id,
        owner="ghost",
        kind="tests.flaky",
        account_sid="AC",
        store_id=None,
        payload={},
        checkpoint=None,
        attempt=1,
        lease_seconds=5,
        batch_size=10,
    )
    ghost.finish()
    with pytest.raises(LeaseLost), ghost.step():
        pass
    assert load(db, op_id).completed_at == op.completed_at


def test_a_step_that_crashes_is_rolled_back_and_the_job_resumes_from_its_checkpoint(
    api: Api, db: Database, fast: Settings
) -> None:
    store_id = make_store(api)
    group = make_trait_group(api, store_id, traits={})
    op_id = enqueue(
        db, "tests.add_traits", payload={"storeId": store_id, "group": group, "count": 6}
    )
    CRASH_AT_STEP[op_id] = 3
    worker = Worker(db, fast, JOBS)
    assert worker.run_once()
    op = load(db, op_id)
    assert op.status == "PENDING"
    assert op.checkpoint == {"done": 3}  # steps 0-2 committed, step 3 rolled back

    def names() -> list[str]:
        with db.transaction(write=False) as session:
            return sorted(
                session.scalars(
                    select(TraitDefinition.name).where(
                        TraitDefinition.store_id == store_id, TraitDefinition.group_name == group
                    )
                )
            )

    assert names() == ["t0", "t1", "t2"]
    drain(worker)
    op = load(db, op_id)
    assert op.status == "COMPLETED"
    assert op.attempts == 2
    # Every step applied exactly once (a repeat would be a duplicate primary key).
    assert names() == [f"t{n}" for n in range(6)]
    with db.transaction(write=False) as session:
        total = session.scalar(
            select(func.count())
            .select_from(TraitDefinition)
            .where(TraitDefinition.store_id == store_id)
        )
    assert total == 9 + 6  # Contact's nine + six
