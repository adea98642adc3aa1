"""SQLite group commit (kit.groupcommit): writes queued together share one
transaction, and yet each request is answered as if it had run alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio import CapacityLimiter
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from convmem.kit.db import Database
from convmem.kit.groupcommit import GroupCommit
from tests.conftest import Api
from tests.factories import make_store, profiles_url


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'gc.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield db
    db.dispose()


def insert(row_id: int, *, then: Callable[[], None] | None = None) -> Callable[[Session], int]:
    def work(session: Session) -> int:
        session.execute(text("INSERT INTO parent (id) VALUES (:id)"), {"id": row_id})
        if then is not None:
            then()
        return row_id

    return work


def fail() -> None:
    raise ValueError("this unit fails after writing")


def rows(db: Database, table: str = "parent") -> list[int]:
    with db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text(f"SELECT id FROM {table} ORDER BY id"))]


async def submit_together(commits: GroupCommit, works: list[Callable[[Session], Any]]) -> list[Any]:
    """Queue every unit in the same turn of the loop (as requests read together do)."""
    return await asyncio.gather(*(commits.run(w) for w in works), return_exceptions=True)


def queue(db: Database) -> GroupCommit:
    return GroupCommit(db, asyncio.Lock(), CapacityLimiter(4))


def test_units_queued_together_share_one_transaction(sqlite_db: Database) -> None:
    async def scenario() -> tuple[list[Any], GroupCommit]:
        commits = queue(sqlite_db)
        return await submit_together(commits, [insert(n) for n in range(1, 6)]), commits

    results, commits = asyncio.run(scenario())
    assert results == [1, 2, 3, 4, 5]
    assert (commits.batches, commits.units) == (1, 5)
    assert rows(sqlite_db) == [1, 2, 3, 4, 5]


def test_a_failing_unit_is_rolled_back_alone(sqlite_db: Database) -> None:
    async def scenario() -> tuple[list[Any], GroupCommit]:
        commits = queue(sqlite_db)
        works = [insert(1), insert(2, then=fail), insert(3), insert(3), insert(4)]
        return await submit_together(commits, works), commits

    results, commits = asyncio.run(scenario())
    assert results[0] == 1 and results[2] == 3 and results[4] == 4
    assert isinstance(results[1], ValueError)
    # A duplicate key fails only its own unit, with the driver's error as raised alone.
    assert isinstance(results[3], IntegrityError)
    assert commits.batches == 1
    assert rows(sqlite_db) == [1, 3, 4]


def test_a_failed_commit_runs_every_unit_again_alone(sqlite_db: Database) -> None:
    def orphan(session: Session) -> str:
        # Checked at COMMIT only (a deferred foreign key): the batch's COMMIT fails.
        session.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 99)"))
        return "orphan"

    async def scenario() -> list[Any]:
        return await submit_together(queue(sqlite_db), [insert(1), orphan, insert(2)])

    results = asyncio.run(scenario())
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], IntegrityError)
    assert rows(sqlite_db) == [1, 2]
    assert rows(sqlite_db, "child") == []


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)


def test_orm_changes_of_a_failed_unit_are_not_written(sqlite_db: Database) -> None:
    def add(note_id: int, *, flush: bool, then: Callable[[], None] | None = None) -> Any:
        def work(session: Session) -> int:
            session.add(Note(id=note_id))
            if flush:
                session.flush()
            if then is not None:
                then()
            return note_id

        return work

    async def scenario() -> list[Any]:
        works = [
            add(1, flush=False),  # flushed by its savepoint's release
            add(2, flush=True, then=fail),  # written, then rolled back
            add(3, flush=False, then=fail),  # still pending when it failed
            add(4, flush=True),
        ]
        return await submit_together(queue(sqlite_db), works)

    _Base.metadata.create_all(sqlite_db.engine)
    results = asyncio.run(scenario())
    assert results[0] == 1 and results[3] == 4
    assert isinstance(results[1], ValueError) and isinstance(results[2], ValueError)
    assert rows(sqlite_db, "notes") == [1, 4]


def test_a_batch_waits_on_a_thread_while_another_connection_writes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "gc.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, other.execute, args=("COMMIT",))

    async def scenario() -> list[Any]:
        commits = queue(sqlite_db)
        ticks = 0

        async def ticker() -> None:  # the event loop stays free meanwhile
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        released.start()
        results = await submit_together(commits, [insert(1), insert(2)])
        task.cancel()
        assert ticks >= 10
        return results

    assert asyncio.run(scenario()) == [1, 2]
    released.join()
    other.close()
    assert rows(sqlite_db) == [1, 2]


def test_a_unit_cancelled_before_its_batch_is_not_run(sqlite_db: Database) -> None:
    async def scenario() -> list[int]:
        commits = queue(sqlite_db)
        first = asyncio.ensure_future(commits.run(insert(1)))
        gone = asyncio.ensure_future(commits.run(insert(2)))
        await asyncio.sleep(0)  # both queued; the batch has not started
        gone.cancel()  # its client went away
        await asyncio.gather(first, gone, return_exceptions=True)
        return rows(sqlite_db)

    assert asyncio.run(scenario()) == [1]


def test_concurrent_creates_share_transactions_and_are_all_readable(api: Api, db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("group commit is SQLite's (PostgreSQL runs writers side by side)")
    store_id = make_store(api)
    created: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        for k in range(6):
            email = f"gc-{n}-{k}@example.com"
            response = api.post(
                profiles_url(store_id), json={"traits": {"Contact": {"email": email}}}
            )
            assert response.status_code == 202, response.text
            # Read-your-writes: answered only once its batch has committed.
            profile = api.get(profiles_url(store_id, response.json()["id"]))
            assert profile.status_code == 200, profile.text
            created[n * 10 + k] = response.json()["id"]

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(created.values())) == 48
    ctx = api.client.app.state.ctx
    writes, reads = list(ctx.commit_queues.values()), list(ctx.read_queues.values())
    assert sum(q.units for q in writes) > sum(q.batches for q in writes)
    assert sum(q.units for q in reads) >= 48  # every GET went through the read queue


def test_reads_queued_together_share_one_read_transaction(sqlite_db: Database) -> None:
    def count(session: Session) -> int:
        return int(session.execute(text("SELECT count(*) FROM parent")).scalar_one())

    def missing(session: Session) -> int:
        session.execute(text("SELECT id FROM parent"))
        raise LookupError("not found")  # as a 404 is raised after a query

    async def scenario() -> tuple[list[Any], GroupCommit]:
        writes = queue(sqlite_db)
        await submit_together(writes, [insert(1), insert(2)])
        reads = GroupCommit(sqlite_db, asyncio.Lock(), CapacityLimiter(4), write=False)
        return await submit_together(reads, [count, missing, count]), reads

    results, reads = asyncio.run(scenario())
    assert results[0] == 2 and results[2] == 2
    assert isinstance(results[1], LookupError)
    assert (reads.batches, reads.units) == (1, 3)
