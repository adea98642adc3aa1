"""PostgreSQL's data plane: `Database.run_async` runs sync session code on the
event loop in a greenlet. Whatever happens to the work (it succeeds, raises,
or its request is cancelled mid-statement), its connection goes back to the
pool outside any transaction, and nothing of a failed write stays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.orm import Session

from convmem.kit.db import Database


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    # A Database of its own: its async connections belong to this test's loop.
    db = Database(pg_url, async_pool_size=2)
    yield db
    db.dispose()


@pytest.fixture
def table(pg_db: Database) -> Iterator[str]:
    name = f"run_async_{uuid.uuid4().hex[:8]}"
    with pg_db.transaction() as session:
        session.execute(text(f"CREATE TABLE {name} (n int)"))
    yield name
    with pg_db.transaction() as session:
        session.execute(text(f"DROP TABLE {name}"))


def _state(session: Session) -> tuple[bool, TransactionStatus]:
    """(autocommit, transaction status) of the session's connection after a statement."""
    session.execute(text("SELECT 1"))
    pooled = session.connection().connection
    driver = pooled.driver_connection
    return pooled.dbapi_connection.autocommit, driver.info.transaction_status  # type: ignore


def _run(db: Database, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the scenario on a loop of its own, closing the connections it opened."""

    async def run() -> None:
        assert db.async_engine is not None
        try:
            await scenario()
        finally:
            await db.async_engine.dispose()

    asyncio.run(run())


def _count(table: str) -> Callable[[Session], int]:
    """Work that counts the table's rows."""

    def count(session: Session) -> int:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    return count


def _insert_then(table: str, statement: str) -> Callable[[Session], None]:
    """Work that inserts a row into the table, then runs `statement`."""

    def write(session: Session) -> None:
        session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        session.execute(text(statement))

    return write


def _checked_out(db: Database) -> int:
    assert db.async_engine is not None
    return int(db.async_engine.pool.checkedout())  # type: ignore[attr-defined]


def test_a_read_runs_in_autocommit_and_a_write_in_a_transaction(pg_db: Database) -> None:
    async def scenario() -> None:
        autocommit, status = await pg_db.run_async(_state, write=False)
        assert autocommit and status == TransactionStatus.IDLE
        autocommit, status = await pg_db.run_async(_state, write=True)
        assert not autocommit and status == TransactionStatus.INTRANS
        assert _checked_out(pg_db) == 0

    _run(pg_db, scenario)


def test_a_write_commits_and_a_read_sees_it(pg_db: Database, table: str) -> None:
    def write(session: Session) -> None:
        session.execute(text(f"INSERT INTO {table} VALUES (1)"))

    async def scenario() -> None:
        await pg_db.run_async(write)
        assert await pg_db.run_async(_count(table), write=False) == 1
        assert _checked_out(pg_db) == 0

    _run(pg_db, scenario)


def test_a_failed_write_rolls_back_and_returns_its_connection(pg_db: Database, table: str) -> None:

    def write_then_fail(session: Session) -> None:
        session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        raise LookupError("the work failed")

    async def scenario() -> None:
        with pytest.raises(LookupError):
            await pg_db.run_async(write_then_fail)
        assert _checked_out(pg_db) == 0
        assert await pg_db.run_async(_count(table), write=False) == 0
        # The connection that failed is usable and out of its transaction.
        for _ in range(2):  # both pooled connections
            _, status = await pg_db.run_async(_state, write=False)
            assert status == TransactionStatus.IDLE

    _run(pg_db, scenario)


def test_a_request_cancelled_mid_statement_gives_its_connection_back(
    pg_db: Database, table: str
) -> None:

    slow_write = _insert_then(table, "SELECT pg_sleep(30)")

    async def scenario() -> None:
        task = asyncio.ensure_future(pg_db.run_async(slow_write))
        await asyncio.sleep(0.5)
        assert _checked_out(pg_db) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _checked_out(pg_db) == 0
        # Nothing of the cancelled write was committed, and the pool's
        # connections (the cancelled one among them) answer at once.
        for _ in range(3):
            assert await asyncio.wait_for(pg_db.run_async(_count(table), write=False), 5) == 0
            _, status = await asyncio.wait_for(pg_db.run_async(_state, write=True), 5)
            assert status == TransactionStatus.INTRANS

    _run(pg_db, scenario)


def test_a_write_whose_connection_died_gives_its_connection_back(
    pg_db: Database, table: str
) -> None:
    """The rollback fails too (the server closed the connection): the
    connection is still checked in (as invalid) and the pool goes on."""

    write_and_die = _insert_then(table, "SELECT pg_terminate_backend(pg_backend_pid())")

    async def scenario() -> None:
        with pytest.raises(Exception):  # noqa: B017 (whichever the driver raises)
            await pg_db.run_async(write_and_die)
        assert _checked_out(pg_db) == 0
        for _ in range(3):
            assert await asyncio.wait_for(pg_db.run_async(_count(table), write=False), 5) == 0

    _run(pg_db, scenario)
