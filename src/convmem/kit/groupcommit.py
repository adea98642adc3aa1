"""SQLite group commit: write requests that arrive together share one transaction.

SQLite runs one write transaction at a time, and for a small write such as a
profile create the transaction itself (a pooled connection, BEGIN IMMEDIATE,
COMMIT writing the WAL frames) cost about as much as the work in it. So a
process's write requests queue here, and each batch runs in one transaction:
every request's work in a SAVEPOINT of its own, then one COMMIT.

What each request sees does not change:

- its work runs after the work queued before it, as if alone (SQLite had
  one writer anyway; the batch is the same serial order);
- work that raises is rolled back to its savepoint and that request alone
  gets the error; the others are committed;
- no request is answered before the COMMIT holding its write has succeeded;
  if the COMMIT fails, every request of the batch gets that error (none of
  them was written);
- a request cancelled (its client gone) before its batch starts is skipped.

A batch is whatever has queued while the previous one ran (bounded by
`max_batch`), so a lone request waits for nobody.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy.orm import Session

from convmem.kit.db import Database, WriterBusy

T = TypeVar("T")

_Entry = tuple[Callable[[Session], Any], "asyncio.Future[Any]"]


class _BatchBroken(Exception):
    """A savepoint could not be rolled back: the whole transaction is unusable."""


class GroupCommit:
    """The write queue of one event loop (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        gate: asyncio.Lock,
        threads: CapacityLimiter,
        *,
        max_batch: int = 32,
    ) -> None:
        self.db = db
        self.gate = gate
        self.threads = threads
        self.max_batch = max_batch
        self._queue: list[_Entry] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None  # referenced, or it may be collected
        # Batches committed and units run, for tests and the benchmark notes.
        self.batches = 0
        self.units = 0

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in the next batch's transaction; its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((work, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # This task starts a turn of the event loop after the request that
        # created it: requests already read from their sockets in that turn
        # have queued by then, and join the batch.
        try:
            while self._queue:
                async with self.gate:
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                    batch = [(w, f) for w, f in batch if not f.cancelled()]
                    if batch:
                        await self._run_batch(batch)
        finally:
            self._draining = False

    async def _run_batch(self, batch: list[_Entry]) -> None:
        try:
            if len(batch) == 1:  # alone: its own transaction, no savepoint needed
                work = batch[0][0]
                outcomes = [await self._transaction(functools.partial(_alone, self.db, work))]
            else:
                outcomes = await self._batch(batch)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        self.batches += 1
        self.units += len(batch)
        for (_, future), (value, error) in zip(batch, outcomes, strict=True):
            if future.done():  # cancelled while its batch ran
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def _batch(self, batch: list[_Entry]) -> list[tuple[Any, BaseException | None]]:
        try:
            return await self._transaction(functools.partial(self._apply, batch))
        except Exception:
            # The transaction failed as a whole (its COMMIT, or a savepoint
            # that could not be rolled back) and nothing of it was written:
            # each request runs again alone, so none fails for another's sake.
            return [
                await self._transaction(functools.partial(_alone, self.db, work))
                for work, _ in batch
            ]

    async def _transaction(self, apply: Callable[..., T]) -> T:
        """`apply(nowait=...)` on the event loop when SQLite's write lock is
        free at once; when a job or another process holds it, on a thread
        that waits for it."""
        try:
            return apply(nowait=True)
        except WriterBusy:
            return await to_thread.run_sync(
                functools.partial(apply, nowait=False), limiter=self.threads
            )

    def _apply(
        self, batch: list[_Entry], *, nowait: bool
    ) -> list[tuple[Any, BaseException | None]]:
        """Every unit in its savepoint, then one COMMIT: (result, error) per unit."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        with self.db.transaction(write=True, nowait=nowait) as session:
            session.connection()  # BEGIN IMMEDIATE now: WriterBusy before any unit runs
            for work, _ in batch:
                outcomes.append(_unit(session, work))
        return outcomes


def _unit(session: Session, work: Callable[[Session], Any]) -> tuple[Any, BaseException | None]:
    # The savepoint goes straight to the driver: through SQLAlchemy's
    # begin_nested, SAVEPOINT and RELEASE cost a create more than they saved.
    # So the ORM's own state is kept right by hand: pending changes are
    # flushed inside the savepoint, and after a rollback to it the identity
    # map is emptied (it may hold rows that no longer exist).
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    raw.execute("SAVEPOINT unit")
    try:
        value = work(session)
        session.flush()
        raw.execute("RELEASE unit")
    except Exception as exc:
        try:
            # A failed flush rolls the whole transaction back (and the
            # savepoint with it): then the batch cannot go on.
            if not session.is_active:
                raise RuntimeError("the session's transaction was rolled back")
            raw.execute("ROLLBACK TO unit")
            raw.execute("RELEASE unit")
        except Exception as broken:
            raise _BatchBroken(f"could not roll back to a savepoint: {broken}") from exc
        session.expunge_all()
        return None, exc
    return value, None


def _alone(
    db: Database, work: Callable[[Session], Any], *, nowait: bool
) -> tuple[Any, BaseException | None]:
    try:
        with db.transaction(write=True, nowait=nowait) as session:
            session.connection()
            return work(session), None
    except WriterBusy:
        raise
    except Exception as exc:
        return None, exc
