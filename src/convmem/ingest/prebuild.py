"""An import's rows turned into new profiles' rows in a second process.

Most of a batch's work does not depend on the database as long as none of its
identifiers is held yet: reading the CSV, coercing cells, grouping the rows
that share identifiers, and building the rows of a new profile for each group.
A second process does that (`engine.plan_new`, the functions the general path
uses) while the writer inserts the batch before. The writer then looks the
batch's identifiers up and inserts the groups nobody holds as they were built;
the others take the general path (`apply`).

What crosses between the processes is plain data (tuples and strings): the
rows as the driver takes them, not the records (pickling those cost more than
building them)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from convmem.ingest.csv_source import CsvSource, SourceError
from convmem.ingest.pipeline import (
    BatchResult,
    ColumnMap,
    Problem,
    _plans,
    _to_record,
    column_map,
    write_records,
)
from convmem.kit.db import utcnow
from convmem.profiles import engine
from convmem.profiles import repository as repo
from convmem.profiles.rules import Record, StoreSchema

# Batches built ahead of the writer (each is a few MB): enough to never wait.
AHEAD = 2
# How long the receiver waits for a batch before it checks the builder is alive.
POLL_SECONDS = 1.0

ProblemTuple = tuple[int, str, str, str, str, bool]


@dataclass
class Built:
    """One batch of rows, built (`build`)."""

    rows: int  # rows read
    last_row: int  # the number of the batch's last row (0: none)
    bytes_read: int
    problems: list[ProblemTuple]  # failed rows (one each) and warnings
    failed: int
    batch: list[tuple[int, list[str]]]  # the rows: (row number, cells)
    # Per record (a row that was not failed): where it is in `batch`, its group.
    positions: list[int]
    group_of: list[int]
    statuses: list[str]  # what the record does if its group is new
    # Per group.
    profile_ids: list[str]
    keys: list[list[tuple[str, str]]]
    general: set[str]  # groups that must take the general path anyway
    built: repo.BuiltRows

    def problem_list(self) -> list[Problem]:
        return [Problem(*p) for p in self.problems]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Each field pickled apart: one pickle of the whole batch keeps a memo
        # entry for each of its ~250,000 objects, and that bookkeeping took
        # half of the pickling (3.9 -> 1.8 µs a row, measured).
        values = (getattr(self, f.name) for f in fields(self))
        return _unpickled, tuple(pickle.dumps(v, pickle.HIGHEST_PROTOCOL) for v in values)


def _unpickled(*parts: bytes) -> Built:
    return Built(*(pickle.loads(part) for part in parts))


class _Spooled(NamedTuple):
    """A batch the builder left in a file (of the spool directory) for the
    receiver: the pipe carries only its name. Through the pipe itself, each
    batch's few MB crossed in 64 KB writes, each a wake-up of both processes,
    and the pickling ran on a thread of its own competing with the building."""

    path: str


def build(
    batch: Sequence[tuple[int, list[str]]],
    columns: ColumnMap,
    schema: StoreSchema,
    store_id: str,
    bytes_read: int = 0,
) -> Built:
    """A batch's rows as records, resolved among themselves as new profiles."""
    plans = _plans(columns, schema)
    problems: list[ProblemTuple] = []
    records: list[Record] = []
    positions: list[int] = []
    failed = 0
    for position, (number, cells) in enumerate(batch):
        record, found = _to_record(number, cells, columns, schema, plans)
        if record is None:
            failed += 1
            found = found[:1]
        else:
            records.append(record)
            positions.append(position)
        problems.extend((p.row, p.column, p.code, p.message, p.value, p.warning) for p in found)
    new = engine.plan_new(store_id, schema, records, utcnow())
    return Built(
        rows=len(batch),
        last_row=batch[-1][0] if batch else 0,
        bytes_read=bytes_read,
        problems=problems,
        failed=failed,
        batch=list(batch),
        positions=positions,
        group_of=new.group_of,
        statuses=[o.status for o in new.outcomes],
        profile_ids=new.profile_ids,
        keys=new.keys,
        general=new.general,
        built=repo.built_rows(new.profiles, new.traits, new.identifiers),
    )


def can_prebuild(schema: StoreSchema) -> bool:
    """Whether a store's imports may be built ahead: not with a fuzzy idType
    (its holders are similar values, found only in the database)."""
    return not schema.has_fuzzy()


class Builder:
    """The second process, building batches of one file from `start_row` on.
    Iterate it for the batches (`Built`), in order; a file that turns out not
    to be a readable CSV raises SourceError where the reading stopped."""

    def __init__(
        self,
        path: Path,
        mappings: list[tuple[str, str, str]],
        schema: StoreSchema,
        store_id: str,
        *,
        start_row: int,
        batch_size: int,
    ) -> None:
        # spawn: the server is multi-threaded, and a fork would copy its locks.
        context = multiprocessing.get_context("spawn")
        self._queue: Any = context.Queue(maxsize=AHEAD)
        self._spool = spool_dir(path)
        shutil.rmtree(self._spool, ignore_errors=True)  # a killed run's
        self._spool.mkdir()
        self._process = context.Process(
            target=_run,
            args=(
                self._queue,
                str(path),
                str(self._spool),
                mappings,
                schema,
                store_id,
                start_row,
                batch_size,
            ),
            daemon=True,
            name="convmem-import-builder",
        )
        self._closed = threading.Event()
        self._process.start()

    def __iter__(self) -> Iterator[Built]:
        # A thread receives and unpickles the next batch while the caller
        # writes this one: most of a write is SQLite's, which lets go of the
        # GIL, so the two overlap.
        received: queue.Queue[Any] = queue.Queue(maxsize=1)
        receiver = threading.Thread(
            target=self._receive, args=(received,), name="convmem-import-receiver", daemon=True
        )
        receiver.start()
        while True:
            item = received.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _receive(self, received: queue.Queue[Any]) -> None:
        """Each batch from the process, then None (or the error to raise)."""
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self._process.is_alive():
                    item = RuntimeError("the import's builder process died")
                else:
                    continue
            except BaseException as exc:  # a batch that cannot be read
                item = exc
            if isinstance(item, _Spooled):
                item = _read_spooled(item)
            if isinstance(item, str):
                item = SourceError(item)
            while not self._closed.is_set():  # until the writer takes it, or is done
                try:
                    received.put(item, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    continue
            if item is None or isinstance(item, BaseException):
                return

    def close(self) -> None:
        self._closed.set()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)
        self._queue.close()
        shutil.rmtree(self._spool, ignore_errors=True)


def spool_dir(path: Path) -> Path:
    """Where the builder of an import of the file at `path` leaves its
    batches: next to the file (the same disk, which the data directory's
    owner sized for uploads)."""
    return path.with_name(path.name + ".building")


def _read_spooled(spooled: _Spooled) -> Built | BaseException:
    try:
        with open(spooled.path, "rb") as handle:
            data = handle.read()
        os.unlink(spooled.path)
        built = pickle.loads(data)
    except BaseException as exc:  # a batch that cannot be read
        return exc
    assert isinstance(built, Built)
    return built


def _run(
    out: Any,
    path: str,
    spool: str,
    mappings: list[tuple[str, str, str]],
    schema: StoreSchema,
    store_id: str,
    start_row: int,
    batch_size: int,
) -> None:
    """The builder process: every batch of the file from `start_row` on, then
    None (or the reading error's message)."""
    import gc

    # Millions of short-lived objects and no cycles among them (reference
    # counting frees each batch): the cyclic collector would only rescan them.
    gc.disable()
    parent = os.getppid()
    written = 0

    def put(item: Any) -> None:
        nonlocal written
        if isinstance(item, Built):
            written += 1
            name = os.path.join(spool, f"{written}.batch")
            with open(name, "wb") as handle:
                pickle.dump(item, handle, pickle.HIGHEST_PROTOCOL)
            item = _Spooled(name)
        while True:  # until the writer takes it, or is gone
            try:
                out.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                if os.getppid() != parent:
                    raise SystemExit(0) from None

    with open(path, "rb") as handle:
        try:
            source = CsvSource(handle)
            columns = column_map(source.header, mappings)
            batch: list[tuple[int, list[str]]] = []
            for number, cells in source.rows():
                if number <= start_row:
                    continue
                batch.append((number, cells))
                if len(batch) >= batch_size:
                    put(build(batch, columns, schema, store_id, source.bytes_read))
                    batch = []
            put(build(batch, columns, schema, store_id, source.bytes_read))
        except SourceError as exc:
            put(str(exc))  # the rows read since the last batch are not written
            return
    put(None)


def apply(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    columns: ColumnMap,
    built: Built,
) -> BatchResult:
    """Write a batch built ahead (ingest.prebuild) in the session's
    transaction: the groups none of whose identifiers a stored profile holds
    go in as they were built; the others (and any the builder could not finish)
    take the general path, as `apply_batch` would write them. The counts and
    problems are `apply_batch`'s for the same rows."""
    result = BatchResult()
    counts = result.counts
    counts.rows = built.rows
    counts.failed = built.failed
    result.problems = built.problem_list()
    counts.warnings = sum(1 for p in result.problems if p.warning)
    keys = {key for group in built.keys for key in group}
    held = engine.find_holders(session, store_id, schema, keys)
    general = set(built.general)
    general.update(
        profile_id
        for profile_id, group in zip(built.profile_ids, built.keys, strict=True)
        if any(key in held for key in group)
    )
    repo.insert_built(session, built.built, general)
    plans = _plans(columns, schema)
    records: list[Record] = []
    numbers: list[int] = []
    for position, group, status in zip(
        built.positions, built.group_of, built.statuses, strict=True
    ):
        if built.profile_ids[group] not in general:
            setattr(counts, status, getattr(counts, status) + 1)
            continue
        number, cells = built.batch[position]
        record, _ = _to_record(number, cells, columns, schema, plans)  # warnings are in
        assert record is not None
        records.append(record)
        numbers.append(number)
    if records:
        # Their holders were looked up above, and no write came in between
        # but the built groups', whose identifiers nobody held.
        write_records(session, store_id, schema, records, numbers, result, holders=held)
    return result
