"""Engine, sessions and the declarative base shared by every domain's models.

SQLite runs in WAL mode with a busy timeout. Write transactions on SQLite start
with `BEGIN IMMEDIATE`, so two writers queue on the database lock up front
instead of failing when a reader upgrades to a writer mid-transaction.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator

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


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        # Enough pooled connections that no request opens one: a new SQLite
        # connection re-reads the schema on its first statement.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=48,
            max_overflow=16,
        )
        _configure_sqlite(engine)
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


def _configure_sqlite(engine: Engine) -> None:
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
        self.engine = make_engine(url, pool_size=pool_size)
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
        # code runs on the event loop (AsyncSession.run_sync, via greenlets)
        # and waits for the network without holding a thread.
        self.async_engine: AsyncEngine | None = None
        self._async_sessions: async_sessionmaker[AsyncSession] | None = None
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
            self._async_sessions = async_sessionmaker(
                self.async_engine, expire_on_commit=False, autoflush=False
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
        """A `SELECT 1` the way data-plane requests reach the database."""
        if self.async_engine is not None:
            # Autocommit: one round trip, instead of BEGIN, SELECT and the
            # ROLLBACK that closing an auto-begun connection sends.
            async with self._slots(), self.async_engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("SELECT 1"))
        else:
            with self.engine.connect() as conn:  # SQLite: microseconds, on the loop
                conn.execute(text("SELECT 1"))

    async def run_async(self, work: Callable[[Session], T]) -> T:
        """Run sync `work` in one transaction on the event loop (PostgreSQL only)."""
        assert self._async_sessions is not None
        async with self._slots(), self._async_sessions() as session, session.begin():
            return await session.run_sync(work)

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


class Prepared:
    """A hot-path Core statement compiled once per dialect and run straight on
    the driver's cursor.

    Through `Connection.execute` a small query costs ~100 µs of Python
    (compile-cache look-up, events, result set-up) against ~10 µs in the
    driver: most of a data-plane request's database time on SQLite, and a
    large share of its CPU on PostgreSQL. Bind and result values still pass
    through the columns' own type processors, so rows hold what
    `Connection.execute` would give, and driver errors are raised as
    SQLAlchemy's DBAPIError, as the error handlers expect. For statements whose
    bind parameters are all named (no expanding `IN` lists)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[type, _Plan] = {}  # per dialect class (driver included)
        columns = getattr(statement, "selected_columns", None)
        self.row_type: Any = (
            collections.namedtuple("Row", [c.key for c in columns]) if columns is not None else None
        )

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(type(dialect))
        if plan is None:
            plan = self._plans[type(dialect)] = _Plan.of(self.statement, dialect)
        return plan

    def all(self, session: Session, **params: Any) -> list[Any]:
        """Every row: named tuples for a select, plain ones for text()."""
        plan, cursor = self._run(session, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        make = self.row_type._make if self.row_type is not None else tuple
        if plan.results is None:
            return [make(row) for row in rows]
        return [make(plan.convert(row)) for row in rows]

    def first(self, session: Session, **params: Any) -> Any:
        rows = self.all(session, **params)
        return rows[0] if rows else None

    def scalars(self, session: Session, **params: Any) -> list[Any]:
        return [row[0] for row in self.all(session, **params)]

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> int:
        """Run a DML statement once per parameter set; returns the rows affected."""
        if not rows:
            return 0
        connection = session.connection()
        plan = self._plan(connection.dialect)
        batch = [plan.bind(row) for row in rows]
        cursor = connection.connection.cursor()
        _announce(connection, cursor, plan.sql, batch, many=True)
        try:
            cursor.executemany(plan.sql, batch)
            return int(cursor.rowcount)
        except connection.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(plan.sql, batch, exc, connection.dialect) from exc
        finally:
            cursor.close()

    def _run(self, session: Session, params: dict[str, Any]) -> tuple[_Plan, Any]:
        connection = session.connection()
        plan = self._plan(connection.dialect)
        bound = plan.bind(params)
        cursor = connection.connection.cursor()
        _announce(connection, cursor, plan.sql, bound, many=False)
        try:
            cursor.execute(plan.sql, bound)
        except connection.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise _wrapped(plan.sql, bound, exc, connection.dialect) from exc
        return plan, cursor


def driver_executemany(session: Session, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run driver-level SQL once per row of values already in their stored
    form (bulk inserts); returns the rows affected."""
    connection = session.connection()
    cursor = connection.connection.cursor()
    _announce(connection, cursor, sql, rows, many=True)
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(sql, rows, exc, connection.dialect) from exc
    finally:
        cursor.close()


def _announce(connection: Connection, cursor: Any, sql: str, params: Any, *, many: bool) -> None:
    """Tell `before_cursor_execute` listeners (the query-plan tests, tracing)
    about a statement that bypasses Connection.execute; free without listeners."""
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        for listener in listeners:
            listener(connection, cursor, sql, params, None, many)


def _wrapped(sql: str, params: Any, exc: Exception, dialect: Dialect) -> DBAPIError:
    error = DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect)
    assert isinstance(error, DBAPIError)
    return error


@dataclasses.dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]
    positional: bool
    binders: tuple[Callable[[Any], Any] | None, ...]
    results: tuple[Callable[[Any], Any] | None, ...] | None

    @classmethod
    def of(cls, statement: Any, dialect: Dialect) -> _Plan:
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("Prepared statements cannot take expanding (IN) parameters")
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        binders = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        results = None
        columns = getattr(statement, "selected_columns", None)
        if columns is not None:
            converters = tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
            results = converters if any(converters) else None
        return cls(compiled.string, names, bool(compiled.positional), binders, results)

    def bind(self, params: dict[str, Any]) -> Any:
        values = [
            params[name] if conv is None else conv(params[name])
            for name, conv in zip(self.names, self.binders, strict=True)
        ]
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        assert self.results is not None
        return tuple(
            value if conv is None else conv(value)
            for value, conv in zip(row, self.results, strict=True)
        )
