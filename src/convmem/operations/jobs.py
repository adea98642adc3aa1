"""What a background job is and the context it runs in.

A job is a function `(ctx: JobContext) -> None` handling one operation kind.
Each domain lists its handlers in its `tasks.py` (`JOBS`), and the composition
root (`convmem.wiring.jobs`) hands them all to the workers. A job does its
work in `ctx.step()` transactions. Each step also saves
`ctx.checkpoint` and verifies the worker still holds the lease, in the same
transaction as the work, so a step's effect and its checkpoint commit together
or not at all: a worker killed mid-step leaves nothing half-applied and the
next worker resumes from the last committed checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from convmem.kit.db import Database, RetryTransaction, is_retryable, utcnow
from convmem.operations import repository, status

T = TypeVar("T")
JobHandler = Callable[["JobContext"], None]
JobHandlers = Mapping[str, JobHandler]


class LeaseLost(Exception):
    """Another worker took the job over; this worker must stop without writing."""


class JobFailed(Exception):
    """A permanent failure: retrying cannot help."""

    def __init__(self, detail: str, *, code: int = 20500, title: str = "Job failed") -> None:
        super().__init__(detail)
        self.detail, self.code, self.title = detail, code, title


class JobDeferred(Exception):
    """The job cannot go on yet (say, its input has not arrived): run it again
    in `seconds`, without counting an attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class JobContext:
    def __init__(
        self,
        db: Database,
        *,
        op_id: str,
        owner: str,
        kind: str,
        account_sid: str,
        store_id: str | None,
        payload: dict[str, Any],
        checkpoint: dict[str, Any] | None,
        attempt: int,
        lease_seconds: float,
        batch_size: int,
    ) -> None:
        self.db = db
        self.op_id = op_id
        self.owner = owner
        self.kind = kind
        self.account_sid = account_sid
        self.store_id = store_id
        self.payload = payload
        self.checkpoint: dict[str, Any] = dict(checkpoint or {})
        self.attempt = attempt
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.lost = threading.Event()
        self.finished = False
        self._result: dict[str, Any] = {}

    def finish(self, *, resource_id: str | None = None, result_path: str | None = None) -> None:
        """Mark the job COMPLETED when the current step commits."""
        self.finished = True
        if resource_id:
            self._result["result"] = {"type": "RESOURCE_ID", "id": resource_id}
        if result_path:
            self._result["result_path"] = result_path

    def defer(self, seconds: float) -> None:
        raise JobDeferred(seconds)

    @contextlib.contextmanager
    def step(self) -> Iterator[Session]:
        if self.lost.is_set():
            raise LeaseLost(self.op_id)
        with self.db.transaction(write=True) as session:
            yield session
            values: dict[str, Any] = {
                "checkpoint": dict(self.checkpoint),
                "lease_expires_at": utcnow() + dt.timedelta(seconds=self.lease_seconds),
            }
            if self.finished:
                now = utcnow()
                values.update(
                    status=status.COMPLETED,
                    completed_at=now,
                    lease_owner=None,
                    error=None,
                    **self._result,
                )
            if not repository.guarded_update(session, op_id=self.op_id, owner=self.owner, **values):
                raise LeaseLost(self.op_id)


STEP_ATTEMPTS = 6


def retrying_step(ctx: JobContext, work: Callable[[Session], T]) -> T:
    """Run `work` in one `ctx.step()`. A step that a concurrent write made
    stale (a plan gone stale, a deadlock, a serialization failure) is rolled
    back and runs again from scratch, with the checkpoint as it was; `work`
    must keep its own changes to the job's state until the step has committed
    (return them, and take them up after this returns)."""
    for attempt in range(STEP_ATTEMPTS):
        saved = dict(ctx.checkpoint)
        try:
            with ctx.step() as session:
                return work(session)
        except (RetryTransaction, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not is_retryable(exc):
                raise
            ctx.checkpoint = saved
            ctx.finished = False
            if attempt == STEP_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
