"""Workers: claim jobs with leases, heartbeat, retry with backoff.

On PostgreSQL many workers claim concurrently with `FOR UPDATE SKIP LOCKED`;
on SQLite the claim is a compare-and-set under the database write lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
from typing import Any

from convmem.kit import ids
from convmem.kit.db import Database, utcnow
from convmem.operations import repository, status
from convmem.operations.jobs import JobContext, JobDeferred, JobFailed, JobHandlers, LeaseLost
from convmem.operations.models import Operation
from convmem.settings import Settings

log = logging.getLogger("convmem.worker")

MAX_BACKOFF_SECONDS = 300.0


class Worker:
    def __init__(
        self, db: Database, settings: Settings, jobs: JobHandlers, *, name: str | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.jobs = jobs
        self.owner = name or f"{socket.gethostname()}:{os.getpid()}:{ids.new_id('w')[-8:]}"

    def run_forever(self, stop: threading.Event) -> None:
        log.info("worker started", extra={"worker": self.owner})
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop error", extra={"worker": self.owner})
                worked = False
            if not worked:
                stop.wait(self.settings.job_poll_seconds)
        log.info("worker stopped", extra={"worker": self.owner})

    def run_once(self) -> bool:
        """Claim and run one job. False when none was due."""
        now = utcnow()
        lease = dt.timedelta(seconds=self.settings.job_lease_seconds)
        with self.db.transaction(write=False) as session:
            if not repository.any_due(session, now=now):
                return False
        with self.db.transaction(write=True) as session:
            op = repository.claim_next(
                session,
                owner=self.owner,
                now=now,
                lease_until=now + lease,
                skip_locked=not self.db.is_sqlite,
            )
        if op is None:
            return False
        log.info(
            "job claimed",
            extra={"operation": op.id, "kind": op.kind, "attempt": op.attempts},
        )
        max_attempts = op.max_attempts or self.settings.job_max_attempts
        if op.attempts > max_attempts:
            # Its workers kept dying mid-job (each takeover counts an attempt).
            self._fail(op.id, JobFailed(f"Gave up after {max_attempts} attempts"))
            return True
        handler = self.jobs.get(op.kind)
        if handler is None:
            self._fail(op.id, JobFailed(f"No handler for operation kind '{op.kind}'"))
            return True
        ctx = JobContext(
            self.db,
            op_id=op.id,
            owner=self.owner,
            kind=op.kind,
            account_sid=op.account_sid,
            store_id=op.store_id,
            payload=op.payload or {},
            checkpoint=op.checkpoint,
            attempt=op.attempts,
            lease_seconds=self.settings.job_lease_seconds,
            batch_size=self.settings.job_batch_size,
        )
        stop_heartbeat = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(ctx, stop_heartbeat), daemon=True, name="heartbeat"
        )
        beat.start()
        try:
            handler(ctx)
            if not ctx.finished:
                ctx.finish()
                with ctx.step():
                    pass
            log.info("job completed", extra={"operation": op.id, "kind": op.kind})
        except JobDeferred as exc:
            self._defer(op.id, exc.seconds)
        except LeaseLost:
            log.warning("job lease lost; another worker owns it", extra={"operation": op.id})
        except JobFailed as exc:
            self._fail(op.id, exc)
        except Exception as exc:
            log.exception("job attempt failed", extra={"operation": op.id})
            self._retry_or_fail(op.id, op.attempts, max_attempts, exc)
        finally:
            stop_heartbeat.set()
            beat.join()
        return True

    def _heartbeat(self, ctx: JobContext, stop: threading.Event) -> None:
        interval = max(self.settings.job_lease_seconds / 3, 0.05)
        while not stop.wait(interval):
            try:
                with self.db.transaction(write=True) as session:
                    held = repository.guarded_update(
                        session,
                        op_id=ctx.op_id,
                        owner=self.owner,
                        lease_expires_at=utcnow()
                        + dt.timedelta(seconds=self.settings.job_lease_seconds),
                    )
            except Exception:
                log.exception("heartbeat failed", extra={"operation": ctx.op_id})
                continue
            if not held:
                ctx.lost.set()
                return

    def _fail(self, op_id: str, exc: JobFailed) -> None:
        log.error("job failed", extra={"operation": op_id, "detail": exc.detail})
        with self.db.transaction(write=True) as session:
            repository.guarded_update(
                session,
                op_id=op_id,
                owner=self.owner,
                status=status.FAILED,
                completed_at=utcnow(),
                lease_owner=None,
                error={
                    "type": f"https://www.twilio.com/docs/api/errors/{exc.code}",
                    "title": exc.title[:128],
                    "code": exc.code,
                    "detail": exc.detail[:1024],
                },
            )

    def _requeue(self, op_id: str, seconds: float, **values: Any) -> None:
        """Give the job back (PENDING, no lease) to run again in `seconds`."""
        with self.db.transaction(write=True) as session:
            repository.guarded_update(
                session,
                op_id=op_id,
                owner=self.owner,
                status=status.PENDING,
                lease_owner=None,
                lease_expires_at=None,
                run_after=utcnow() + dt.timedelta(seconds=seconds),
                **values,
            )

    def _defer(self, op_id: str, seconds: float) -> None:
        # Waiting is not trying: the claim counted an attempt, take it back.
        self._requeue(op_id, seconds, attempts=Operation.attempts - 1)

    def _retry_or_fail(self, op_id: str, attempts: int, max_attempts: int, exc: Exception) -> None:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        if attempts >= max_attempts:
            self._fail(op_id, JobFailed(f"Failed after {attempts} attempts: {detail}"))
            return
        delay = min(self.settings.job_backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        self._requeue(
            op_id,
            delay,
            error={"title": "Attempt failed, will retry", "code": 20500, "detail": detail},
        )


class WorkerPool:
    """Worker threads of one process; `convmem serve` runs one in-process."""

    def __init__(self, db: Database, settings: Settings, jobs: JobHandlers) -> None:
        self.db = db
        self.settings = settings
        self.jobs = jobs
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.settings.worker_threads):
            worker = Worker(self.db, self.settings, self.jobs)
            thread = threading.Thread(
                target=worker.run_forever, args=(self.stop,), daemon=True, name=f"worker-{n}"
            )
            thread.start()
            self.threads.append(thread)

    def shutdown(self, timeout: float = 10.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
