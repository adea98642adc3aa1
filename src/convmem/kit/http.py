"""HTTP helpers shared by every domain's endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import functools
import hashlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import orjson
from anyio import to_thread
from fastapi import Depends, Request
from fastapi.responses import JSONResponse as _JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from convmem.kit.context import AppContext, get_context
from convmem.kit.db import ATTEMPT, MAX_TRANSACTION_ATTEMPTS, is_retryable
from convmem.kit.errors import PreconditionFailed, WriteConflict

T = TypeVar("T")


class JSONResponse(_JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def _session(request: Request, *, write: bool) -> AsyncIterator[Session]:
    """The request's one transaction: committed on success, rolled back on error.

    On SQLite, this process's write requests queue on an async lock before
    their transaction starts: waiting costs no thread, so a writer holding the
    database lock can always get the threads it needs to finish (with threads
    blocked on SQLite's busy handler instead, the pool can starve).
    """
    ctx = get_context(request)
    gate = ctx.write_gate() if write and ctx.db.is_sqlite else None
    if gate is not None:
        await gate.acquire()
    try:
        session = ctx.db.session(write=write)
        try:
            yield session
        except BaseException:
            await run_in_threadpool(_finish, session, commit=False)
            raise
        await run_in_threadpool(_finish, session, commit=True)
    finally:
        if gate is not None:
            gate.release()


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def read_session(request: Request) -> AsyncIterator[Session]:
    async for session in _session(request, write=False):
        yield session


async def write_session(request: Request) -> AsyncIterator[Session]:
    async for session in _session(request, write=True):
        yield session


# Control-plane routes declare whether they read or write (the HTTP method is
# not consulted). scope="function" closes the transaction before the response
# is sent, so a client that reads right after a write always sees it.
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]


def base_url(request: Request) -> str:
    public = get_context(request).settings.public_url
    return (public or str(request.base_url)).rstrip("/")


def _tag_id(resource_id: str) -> str:
    # A short digest keeps ETags well under If-Match's 100-character limit.
    return hashlib.sha256(resource_id.encode()).hexdigest()[:16]


def make_etag(resource_id: str, version: int) -> str:
    raw = orjson.dumps({"id": _tag_id(resource_id), "v": version})
    return '"' + base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + '"'


def expected_version(if_match: str | None, resource_id: str) -> int | None:
    """The version an If-Match header pins, None when absent or `*`.

    Raises 412 when the header names another resource or is not one of our ETags.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        try:
            data = orjson.loads(base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)))
        except (binascii.Error, ValueError):
            continue
        if isinstance(data, dict) and data.get("id") == _tag_id(resource_id):
            version = data.get("v")
            if isinstance(version, int):
                return version
    raise PreconditionFailed()


def accepted(
    request: Request,
    *,
    operation_id: str,
    message: str,
    done: bool,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The 202 answer of every control-plane write."""
    status_url = f"{base_url(request)}/v1/ControlPlane/Operations/{operation_id}"
    body: dict[str, Any] = {"message": message, "statusUrl": status_url}
    if extra:
        body.update(extra)
    return JSONResponse(
        body,
        status_code=202,
        headers={
            "Operation-Id": operation_id,
            "Location": status_url,
            "Retry-After": "0" if done else "1",
        },
    )


class Mode(enum.Enum):
    """What a data-plane unit of work does, declared by its endpoint's dependency."""

    READ = "read"
    WRITE = "write"
    # Large writes (bulk upserts): never on the event loop, on either backend,
    # so other requests keep being answered meanwhile.
    BULK = "bulk"


def _numbered(work: Callable[[Session], T], attempt: int) -> Callable[[Session], T]:
    """`work`, telling its session which attempt it is (`kit.db.first_attempt`)."""

    def run(session: Session) -> T:
        session.info[ATTEMPT] = attempt
        return work(session)

    return run


class Transaction:
    """Runs a data-plane unit of work (sync code) in one transaction.

    Used instead of ReadSession/WriteSession on hot paths, where each sync dependency would
    cost a thread hand-off of a few hundred microseconds. Where the work runs:

    - READ and WRITE on PostgreSQL: on the event loop, through psycopg's async
      driver (statements wait for the network without holding a thread);
    - READ on SQLite: on the event loop (WAL readers never wait on a lock),
      in a read transaction shared with the reads queued beside it
      (kit.groupcommit);
    - WRITE on SQLite: through the process's group commit (kit.groupcommit):
      each in a savepoint of a transaction shared with the writes queued
      beside it, on the event loop when the write lock is free at once, else
      on a worker thread that waits for it;
    - BULK: on a worker thread (`ctx.threads`), on both backends.
    """

    def __init__(self, ctx: AppContext, mode: Mode) -> None:
        self.ctx = ctx
        self.mode = mode

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction and return its result.

        A transaction that deadlocked, failed to serialize or saw its profiles
        change under it is rolled back and run again from the start (so it takes
        its locks afresh, in order); after a few attempts the client gets 409."""
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._run_once(work, attempt)
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                if attempt == MAX_TRANSACTION_ATTEMPTS:
                    raise WriteConflict() from exc
            # Jittered backoff, so the writers that collided do not collide again.
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    async def _run_once(self, work: Callable[[Session], T], attempt: int) -> T:
        db = self.ctx.db
        if self.mode is Mode.BULK:
            if not db.is_sqlite:
                return await self._in_thread(work)
            async with self.ctx.write_gate():
                return await self._in_thread(work)
        if not db.is_sqlite:
            if self.mode is Mode.WRITE:
                work = _numbered(work, attempt)
            return await db.run_async(work, write=self.mode is not Mode.READ)
        if self.mode is Mode.READ:
            # SQLite reads in WAL mode never wait on a lock and are CPU-bound
            # under the GIL, so they run on the event loop: no thread hand-off.
            return await self.ctx.group_read().run(work)
        # Writes share transactions with the writes queued beside them (group
        # commit), on the event loop when SQLite's lock is free at once.
        return await self.ctx.group_commit().run(work)

    async def _in_thread(self, work: Callable[[Session], T]) -> T:
        """A bulk write, in its own transaction on a worker thread."""
        return await to_thread.run_sync(
            functools.partial(self._write, work), limiter=self.ctx.threads
        )

    def _write(self, work: Callable[[Session], T]) -> T:
        with self.ctx.db.transaction(write=True) as session:
            return work(session)
