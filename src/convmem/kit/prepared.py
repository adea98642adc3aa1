"""Hot-path statements run straight on the driver's cursor.

Through `Connection.execute` a small query costs ~100 µs of Python
(compile-cache look-up, events, result set-up) against ~10 µs in the driver:
most of a data-plane request's database time on SQLite, and a large share of
its CPU on PostgreSQL. What runs here keeps SQLAlchemy's contract: values pass
the columns' own type processors, driver errors arrive as DBAPIError (which
the error handlers read), and `before_cursor_execute` listeners are told."""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, literal_column, select, true
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


class Prepared:
    """A Core statement compiled once per dialect class and run on the cursor
    of the session's connection; rows hold what `Connection.execute` would
    give. For statements whose bind parameters are all named (no expanding
    `IN` lists)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[type, _Plan] = {}  # per dialect class (driver included)
        # With a guard folded in: per (dialect class, guard's statement).
        self._guarded: dict[tuple[type, int], _Plan] = {}
        # Where its ORDER BY columns sit among its selected ones; None when a
        # guard cannot ride along (not a Core select, or it orders by a column
        # it does not select, so the order would not survive being nested).
        self._order_positions = _order_positions(statement)
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
        connection = session.connection()
        if self._order_positions is not None and GUARD in session.info:
            return self._guarded_all(connection, session.info.pop(GUARD), params)
        plan = self._plan(connection.dialect)
        rows = _fetched(connection, plan, params)
        make = self.row_type._make if self.row_type is not None else tuple
        return [make(row) for row in rows]

    def _guarded_all(
        self, connection: Connection, guard: Guard, params: dict[str, Any]
    ) -> list[Any]:
        key = (type(connection.dialect), id(guard.check))
        plan = self._guarded.get(key)
        if plan is None:
            assert self._order_positions is not None
            statement = _guarded_statement(
                guard.check.statement, self.statement, self._order_positions
            )
            plan = self._guarded[key] = _Plan.of(statement, connection.dialect)
        rows = _fetched(connection, plan, {**guard.params, **params})
        width = len(guard.check.statement.selected_columns)
        # The guard's columns come first; no row at all means no guard row.
        guard.verify(tuple(rows[0][:width]) if rows else None)
        make = self.row_type._make
        # The last column marks a row of this statement (not the outer join's NULLs).
        return [make(row[width:-1]) for row in rows if row[-1] is not None]

    def first(self, session: Session, **params: Any) -> Any:
        rows = self.all(session, **params)
        return rows[0] if rows else None

    def scalars(self, session: Session, **params: Any) -> list[Any]:
        return [row[0] for row in self.all(session, **params)]

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> int:
        """Run a DML statement once per parameter set; returns the rows affected."""
        if not rows:
            return 0
        plan = self._plan(session.connection().dialect)
        return driver_executemany(session, plan.sql, [plan.bind(row) for row in rows])


GUARD = "convmem.guard"


def pending_guard(session: Session) -> bool:
    """Whether a guard waits for a statement to carry it (or for `settle`)."""
    return GUARD in session.info


def take_guard(session: Session) -> Guard | None:
    """The pending guard, for a statement that carries it itself (and then
    calls `verify` with the check's row). One it cannot carry (no `expect`
    row to write on) is settled here, on its own."""
    guard: Guard | None = session.info.get(GUARD)
    if guard is not None and guard.expect is None:
        guard.settle(session)
        return None
    session.info.pop(GUARD, None)
    return guard


@dataclasses.dataclass(frozen=True)
class Guard:
    """A check that a unit of work's premise still holds (say, that its store
    is still ACTIVE at the schema version the work assumed), folded into the
    first guardable select the unit runs: no round trip of its own.

    Put it in `session.info[GUARD]`; the first `Prepared.all` able to carry it
    takes it out and runs it as part of its own statement. `verify` gets the
    check's row (None when the check found none) and raises to abort the work.
    What no statement took must be run with `settle` before the unit ends."""

    check: Prepared
    params: dict[str, Any]
    verify: Callable[[tuple[Any, ...] | None], None]
    # The check's row when the premise holds: a statement that writes only
    # if it holds (`embedded`) compares the row with it.
    expect: tuple[Any, ...] | None = None

    def embedded(self, connection: Connection) -> tuple[str, dict[str, Any]]:
        """The check's SQL and bound parameters, for a driver-level statement
        to run as a CTE (named parameters: PostgreSQL's driver)."""
        plan = self.check._plan(connection.dialect)
        if plan.positional:
            raise ValueError("a guard embeds only in statements with named parameters")
        return plan.sql, plan.bind(self.params)

    def settle(self, session: Session) -> None:
        """Run the check on its own, unless a statement already carried it."""
        if session.info.get(GUARD) is self:
            del session.info[GUARD]
            row = self.check.first(session, **self.params)
            self.verify(tuple(row) if row is not None else None)


def _order_positions(statement: Any) -> list[int] | None:
    if not isinstance(statement, Select):
        return None
    selected = list(statement.selected_columns)
    positions = []
    for column in statement._order_by_clauses:
        position = next((n for n, c in enumerate(selected) if c is column), None)
        if position is None:
            return None
        positions.append(position)
    return positions


def _guarded_statement(
    check: Select[Any], statement: Select[Any], order_positions: list[int]
) -> Select[Any]:
    """`check LEFT JOIN (statement) ON true`: one row with NULLs for the
    statement when it finds nothing, no row when the check finds nothing."""
    guard = check.subquery("guard")
    inner = statement.add_columns(literal_column("1").label("row_marker")).subquery("inner_rows")
    return (
        select(*guard.c, *inner.c)
        .select_from(guard.outerjoin(inner, true()))
        .order_by(*[inner.c[n] for n in order_positions])
    )


def _fetched(connection: Connection, plan: _Plan, params: dict[str, Any]) -> list[Any]:
    rows = _rows(connection, plan.sql, plan.bind(params))
    if plan.results is None:
        return rows
    return [plan.convert(row) for row in rows]


# Values per SQLite `IN (...)` list: a batch's thousands of values go in
# statements of this many each.
SQLITE_IN_VALUES = 500


def sqlite_in_chunks(values: Sequence[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
    """`values` in slices of SQLITE_IN_VALUES, each with its placeholders
    (`?, ?, ...`) for an `IN (...)` list."""
    for start in range(0, len(values), SQLITE_IN_VALUES):
        chunk = values[start : start + SQLITE_IN_VALUES]
        yield _placeholders(len(chunk)), chunk


@functools.cache
def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def driver_executemany(session: Session, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run driver-level SQL once per row of values already in their stored
    form (bulk inserts); returns the rows affected."""
    cursor = _executed(session.connection(), sql, rows, many=True)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


def driver_rows(
    session: Session, sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of driver-level SQL with parameters (positional, or named in
    the driver's style) already in their stored form (columns that need no
    result processing)."""
    return _rows(session.connection(), sql, params)


def _rows(connection: Connection, sql: str, params: Any) -> list[Any]:
    cursor = _executed(connection, sql, params, many=False)
    try:
        return cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()


def _executed(connection: Connection, sql: str, params: Any, *, many: bool) -> Any:
    """A driver cursor that has run `sql` (once, or once per parameter set
    with `many`); the caller closes it. `before_cursor_execute` listeners (the
    query-plan tests, tracing) are told first, which costs nothing without
    listeners; a driver error is raised as SQLAlchemy's DBAPIError."""
    cursor = connection.connection.cursor()
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        for listener in listeners:
            listener(connection, cursor, sql, params, None, many)
    dialect = connection.dialect
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        cursor.close()
        error = DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect)
        raise error from exc
    return cursor


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
