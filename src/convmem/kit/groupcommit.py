"""SQLite group commit: data-plane requests that arrive together share one
transaction.

For a small request such as a profile create or a lookup, the transaction
around the work (a Session, a pooled connection, `BEGIN`, the `COMMIT` that
writes the WAL frames) cost about as much as the work itself. So a process's
SQLite requests queue here (writes and reads in separate queues), and each
batch runs in one transaction: every request's work in a SAVEPOINT of its
own, then one COMMIT.

What each request sees does not change:

- its work runs after the work queued before it, as if alone (SQLite has one
  writer at a time anyway, and runs the batch in that same serial order);
- work that raises is rolled back to its savepoint and that request alone
  gets the error; the others go on;
- no request is answered before the COMMIT of its batch has succeeded; if the
  transaction fails as a whole, each request of the batch runs again alone, so
  none fails for another's sake;
- a request cancelled (its client gone) before its batch starts is skipped.

A batch is whatever has queued by the time it starts (bounded by
`max_batch`): a request waits for nobody, and one that is alone runs in a
transaction of its own, as it would without the queue. What the queue costs a
lone request is one turn of the event loop (~30 µs here, measured).
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
_Outcome = tuple[Any, BaseException | None]  # (result, error) of one unit


class _BatchBroken(Exception):
    """A savepoint could not be rolled back: the whole transaction is unusable."""


class GroupCommit:
    """One event loop's queue of SQLite writes (or reads; see the module docstring)."""

    def __init__(
        self,
        db: Database,
        gate: asyncio.Lock,
        threads: CapacityLimiter,
        *,
        write: bool = True,
        max_batch: int = 32,
    ) -> None:
        self.db = db
        # Held while a transaction runs: orders this process's writers (bulk
        # writes on threads take it too).
        self.gate = gate
        self.threads = threads
        self.write = write
        self.max_batch = max_batch
        self._queue: list[_Entry] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None  # referenced, or it may be collected
        # Batches run and the units in them, for tests and the benchmark notes.
        self.batches = 0
        self.units = 0

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a transaction; its result once that has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((work, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # This task starts a turn of the event loop after the request that
        # created it: requests read from their sockets in that same turn have
        # queued by then, and join the batch.
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
                outcomes = [await self._transaction(self._alone(batch[0][0]))]
            else:
                outcomes = await self._together(batch)
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

    async def _together(self, batch: list[_Entry]) -> list[_Outcome]:
        try:
            return await self._transaction(functools.partial(self._apply, batch))
        except Exception:
            # The transaction failed as a whole (its COMMIT, or a savepoint
            # that could not be rolled back) and nothing of it was written:
            # each request runs again alone, so none fails for another's sake.
            return [await self._transaction(self._alone(work)) for work, _ in batch]

    async def _transaction(self, apply: Callable[..., T]) -> T:
        """`apply(nowait=...)` on the event loop when SQLite's write lock is
        free at once; when a job or another process holds it, on a thread
        that waits for it. (Reads never wait: WAL readers take no lock.)"""
        try:
            return apply(nowait=True)
        except WriterBusy:
            return await to_thread.run_sync(
                functools.partial(apply, nowait=False), limiter=self.threads
            )

    def _apply(self, batch: list[_Entry], *, nowait: bool) -> list[_Outcome]:
        """Every unit in its savepoint, then one COMMIT."""
        outcomes: list[_Outcome] = []
        with self.db.transaction(write=self.write, nowait=nowait) as session:
            session.connection()  # BEGIN (IMMEDIATE) now: WriterBusy before any unit runs
            for work, _ in batch:
                outcomes.append(_unit(session, work))
        return outcomes

    def _alone(self, work: Callable[[Session], Any]) -> Callable[..., _Outcome]:
        return functools.partial(_alone, self.db, work, self.write)


def _unit(session: Session, work: Callable[[Session], Any]) -> _Outcome:
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


def _alone(db: Database, work: Callable[[Session], Any], write: bool, *, nowait: bool) -> _Outcome:
    """`work` in a transaction of its own."""
    try:
        with db.transaction(write=write, nowait=nowait) as session:
            session.connection()
            return work(session), None
    except WriterBusy:
        raise
    except Exception as exc:
        return None, exc
