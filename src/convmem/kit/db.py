"""Engine, sessions and the declarative base shared by every domain's models.

SQLite runs in WAL mode with a busy timeout. Write transactions on SQLite start
with `BEGIN IMMEDIATE`, so two writers queue on the database lock up front
instead of failing when a reader upgrades to a writer mid-transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

from psycopg.pq import TransactionStatus
from sqlalchemy import JSON, DateTime, MetaData, create_engine, event, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn

from convmem.kit.walcheckpoint import FALLBACK_PAGES, WalCheckpointer

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

T = TypeVar("T")
# Execution option that makes the next transaction on a SQLite connection a writer...
IMMEDIATE = "convmem_immediate"
# ...and fails at once with WriterBusy instead of waiting when another writer holds the lock.
NOWAIT = "convmem_nowait"
BUSY_TIMEOUT_MS = 30000


class WriterBusy(Exception):
    """Another connection holds SQLite's write lock (raised only with NOWAIT)."""


class RetryTransaction(Exception):
    """What the transaction read changed under it: roll back and run it again."""


# PostgreSQL's deadlock_detected and serialization_failure: the transaction was
# rolled back and running it again is the documented remedy.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
MAX_TRANSACTION_ATTEMPTS = 6


# Session.info key: which run of a request's write transaction this is
# (kit.http sets it; work run elsewhere, such as a job step, has none).
ATTEMPT = "convmem.attempt"


def first_attempt(session: Session) -> bool:
    """Whether the session runs a request's transaction for the first time."""
    return session.info.get(ATTEMPT) == 1


# Session.info keys: the session may run in autocommit (its connection is
# put back in transactions when the work ends), and the connection whose
# statements commit one by one until `begin` (see autocommit_until_begin).
_MAY_AUTOCOMMIT = "convmem.may_autocommit"
_AUTOCOMMIT = "convmem.autocommit"


def autocommit_until_begin(session: Session) -> None:
    """Let a request's write run its statements each committed on its own
    until it calls `begin`, so a write that turns out to be one statement (the
    create of a new profile) costs no BEGIN and COMMIT round trips.

    Only for a request's first attempt (a retry is an ordinary transaction)
    on PostgreSQL's data plane (`Database.run_async`, which restores the
    connection afterwards), before the transaction's first statement; a no-op
    elsewhere. The caller must `begin` before any statement that has to be
    atomic with another. Under READ COMMITTED each statement of a transaction
    reads its own snapshot anyway, so a read before `begin` sees what it would
    have seen inside the transaction."""
    if not session.info.get(_MAY_AUTOCOMMIT) or not first_attempt(session):
        return
    pooled = session.connection().connection
    driver: Any = pooled.driver_connection
    if driver.info.transaction_status != TransactionStatus.IDLE:
        return  # a statement ran: the transaction has begun
    pooled.dbapi_connection.autocommit = True  # type: ignore[union-attr]
    session.info[_AUTOCOMMIT] = pooled


def in_autocommit(session: Session) -> bool:
    """Whether `autocommit_until_begin` is in effect: each statement commits alone."""
    return _AUTOCOMMIT in session.info


def begin(session: Session) -> None:
    """End `autocommit_until_begin`: the next statement opens the transaction
    (a no-op when it is not in effect)."""
    pooled = session.info.pop(_AUTOCOMMIT, None)
    if pooled is not None:
        pooled.dbapi_connection.autocommit = False


def _ending_autocommit(work: Callable[[Session], T]) -> Callable[[Session], T]:
    """`work`, after which its connection goes back to the pool in
    transactions again, however the work ended."""

    def run(session: Session) -> T:
        session.info[_MAY_AUTOCOMMIT] = True
        try:
            return work(session)
        finally:
            pooled = session.info.get(_AUTOCOMMIT)
            if pooled is not None:
                try:
                    begin(session)
                except Exception:
                    pooled.invalidate()  # broken: never handed out again

    return run


def _in_transaction(session: Session, work: Callable[[Session], T]) -> T:
    """`work` in a transaction of `session`, which is closed when it succeeds."""
    with session.begin():
        result = work(session)
    session.close()
    return result


async def _to_completion(cleanup: Awaitable[None]) -> None:
    """Await `cleanup` to its end even if the caller is cancelled meanwhile
    (the cancellation is raised once it is done), as AsyncSession's exit does."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            cancelled = exc
    task.result()
    if cancelled is not None:
        raise cancelled


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    return isinstance(exc, DBAPIError) and sqlstate(exc) in RETRYABLE_SQLSTATES


def sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


# SQLite's extended result codes for a duplicate key.
_SQLITE_DUPLICATE_KEY = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def is_unique_violation(exc: DBAPIError) -> bool:
    """A duplicate key: the one integrity error a racing client can cause.
    Decided by the driver's error code (SQLSTATE or SQLite's extended code),
    never by the message."""
    if sqlstate(exc) == "23505":
        return True
    return getattr(exc.orig, "sqlite_errorname", None) in _SQLITE_DUPLICATE_KEY


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def partial(condition: str) -> dict[str, Any]:
    """Index options that keep only the rows matching `condition`, on both backends."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


def is_postgres(session: Session) -> bool:
    """The one test of which backend a session talks to (the alternative is
    SQLite). Backend-specific SQL branches on this and nothing else."""
    return session.get_bind().dialect.name == "postgresql"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _int_or_float(digits: str) -> int | float:
    # PostgreSQL prints jsonb numbers without exponents: 1e300 comes back as 301
    # digits. Integers beyond 64 bits can only have been sent as such floats.
    value = int(digits)
    return value if -(2**63) <= value < 2**63 else float(value)


def load_json(text: str) -> Any:
    """How JSON columns are read back on PostgreSQL."""
    return json.loads(text, parse_int=_int_or_float)


def _private_sqlite_file(engine: Engine) -> None:
    """Create the database file (and its directory) readable by this user only;
    SQLite gives its -wal and -shm files the same mode."""
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(
    url: str, *, pool_size: int = 10, checkpointer: WalCheckpointer | None = None
) -> Engine:
    """`checkpointer` (SQLite): the thread that checkpoints the file's WAL,
    started with the first connection; connections then leave it the work."""
    if url.startswith("sqlite"):
        # Enough pooled connections that no request opens one: a new SQLite
        # connection re-reads the schema on its first statement.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=48,
            max_overflow=16,
            # The most recently returned connection first: SQLite drops a
            # connection's page cache when another connection has written since
            # its last transaction, so rotating through the pool (FIFO) started
            # nearly every request on a cold cache. The event loop's requests now
            # keep reusing one warm connection.
            pool_use_lifo=True,
        )
        _configure_sqlite(engine, checkpointer)
        _private_sqlite_file(engine)
        return engine
    if pool_size <= 0:
        return create_engine(url, poolclass=NullPool, json_deserializer=load_json)
    # This engine serves the control plane and background jobs; pre-ping keeps
    # them working across a database restart. (The data plane's async pool
    # skips it: a broken connection fails one statement and is replaced.)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        json_deserializer=load_json,
    )


def _configure_sqlite(engine: Engine, checkpointer: WalCheckpointer | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # transaction handling cannot start an IMMEDIATE transaction).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if checkpointer is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            checkpointer.start()  # once the file is in WAL mode
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight on the driver: through exec_driver_sql, BEGIN cost a
        # request more Python than its queries.
        options = conn.get_execution_options()
        raw = conn.connection.dbapi_connection
        if not options.get(IMMEDIATE, False):
            raw.execute("BEGIN")
            return
        if not options.get(NOWAIT, False):
            raw.execute("BEGIN IMMEDIATE")
            return
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise WriterBusy(str(exc)) from exc
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class Database:
    """An engine plus the session factory every request and job uses."""

    def __init__(self, url: str, *, pool_size: int = 10, async_pool_size: int = 8) -> None:
        self.url = url
        self.async_pool_size = async_pool_size
        self._loop_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        path = make_url(url).database if url.startswith("sqlite") else None
        self._checkpointer = (
            WalCheckpointer(path)
            if path and path != ":memory:" and not path.startswith("file:")
            else None
        )
        self.engine = make_engine(url, pool_size=pool_size, checkpointer=self._checkpointer)
        # Per database (the same test as is_postgres, for code holding no session).
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Write sessions on SQLite begin with BEGIN IMMEDIATE, lazily, at their
        # first statement (so creating a session never blocks).
        self._write_sessions = sessionmaker(
            self.engine.execution_options(**{IMMEDIATE: True}) if self.is_sqlite else self.engine,
            expire_on_commit=False,
            autoflush=False,
        )
        self._nowait_sessions = sessionmaker(
            self.engine.execution_options(**{IMMEDIATE: True, NOWAIT: True}),
            expire_on_commit=False,
            autoflush=False,
        )
        # PostgreSQL's data plane runs on psycopg's async driver: the same sync
        # code runs on the event loop (in a greenlet, as AsyncSession.run_sync
        # does) and waits for the network without holding a thread.
        self.async_engine: AsyncEngine | None = None
        self._loop_sessions: sessionmaker[Session] | None = None
        self._loop_read_sessions: sessionmaker[Session] | None = None
        if not self.is_sqlite:
            self.async_engine = create_async_engine(
                url,
                # A fixed set of connections kept open: "overflow" connections
                # are closed as soon as they are returned, so under load every
                # request past the pool size paid for a new PostgreSQL backend
                # (a fork and a handshake), and throughput fell as clients were
                # added. Requests beyond the pool wait for a connection instead.
                pool_size=async_pool_size,
                max_overflow=0,
                pool_timeout=30,
                pool_recycle=1800,
                # run_async always ends its transaction (commit or rollback), so
                # the pool's extra ROLLBACK on check-in would be a wasted round trip.
                pool_reset_on_return=None,
                json_deserializer=load_json,
            )
            # Plain sync sessions over the async engine's connections, run in a
            # greenlet by run_async. AsyncSession's own wrapper (its
            # transaction object, and a task per close) cost more CPU than the
            # round trip of a one-statement read (docs/benchmarks.md).
            loop_engine = self.async_engine.sync_engine
            self._loop_sessions = sessionmaker(loop_engine, expire_on_commit=False, autoflush=False)
            # Reads in autocommit: no BEGIN and COMMIT round trips. Under READ
            # COMMITTED each statement of a transaction takes its own snapshot
            # anyway, so a read sees exactly what it would inside one.
            self._loop_read_sessions = sessionmaker(
                loop_engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                autoflush=False,
            )

    def _slots(self) -> asyncio.Semaphore:
        """One slot per pooled connection (per event loop). Requests queue here,
        in order and cheaply, so a connection returned to the pool is taken at
        once instead of waking one of hundreds of waiters inside the pool."""
        loop = asyncio.get_running_loop()
        slots = self._loop_slots.get(loop)
        if slots is None:
            slots = self._loop_slots[loop] = asyncio.Semaphore(self.async_pool_size)
        return slots

    async def ping(self) -> None:
        """A `SELECT 1` over the data plane's async driver, in one round trip.
        (The hot-path benchmarks' baseline: kept as it is, so their figures
        compare across changes to `run_async`.)"""
        if self.async_engine is not None:
            # Autocommit: one round trip, instead of BEGIN, SELECT and the
            # ROLLBACK that closing an auto-begun connection sends.
            async with self._slots(), self.async_engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("SELECT 1"))
        else:
            with self.engine.connect() as conn:  # SQLite: microseconds, on the loop
                conn.execute(text("SELECT 1"))

    async def run_async(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run sync `work` on the event loop (PostgreSQL only): in one
        transaction, or for a read (`write=False`) in autocommit."""
        sessions = self._loop_sessions if write else self._loop_read_sessions
        assert sessions is not None
        async with self._slots():
            session = sessions()
            try:
                return await greenlet_spawn(
                    _in_transaction, session, _ending_autocommit(work) if write else work
                )
            except BaseException:
                # Cancelled or failed partway: the connection still goes back
                # to the pool (or is invalidated), whatever else is cancelled.
                await _to_completion(greenlet_spawn(session.close))
                raise

    def session(self, *, write: bool = False, nowait: bool = False) -> Session:
        """A new session; no database work happens until its first statement.

        `nowait` (SQLite writes): raise WriterBusy instead of waiting for the lock.
        """
        if write and nowait and self.is_sqlite:
            return self._nowait_sessions()
        return self._write_sessions() if write else self._sessions()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True, nowait: bool = False) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back otherwise."""
        session = self.session(write=write, nowait=nowait)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self.async_engine is not None:
            self.async_engine.sync_engine.dispose()


def affected(session: Session, statement: Executable) -> int:
    """Run an INSERT/UPDATE/DELETE and return how many rows it touched."""
    result = session.execute(statement)
    return int(cast(CursorResult[Any], result).rowcount)


def core(session: Session) -> Connection:
    """The session's connection, for hot-path Core statements: it skips the
    ORM's per-statement work (several times cheaper for small queries)."""
    return session.connection()


def bump_version(
    session: Session,
    model: Any,
    *conditions: Any,
    expected_version: int | None,
    **values: Any,
) -> bool:
    """UPDATE one versioned row (version + 1), only if it still has
    `expected_version` when given: the atomic check behind If-Match.
    False when no row matched."""
    query = update(model).where(*conditions)
    if expected_version is not None:
        query = query.where(model.version == expected_version)
    query = query.values(version=model.version + 1, **values)
    return affected(session, query.execution_options(synchronize_session=False)) == 1
