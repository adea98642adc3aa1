"""The import job: wait for the file, then stream it through the ingest
pipeline one batch per transaction.

Each batch commits with its checkpoint (the last row written, the counts, the
report lines so far), so a worker that dies mid-import leaves the next one to
go on after the last committed batch: no row is written twice. A dry run does
everything in one transaction and rolls it back, keeping only the counts and
the report."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from convmem.imports import repository as repo
from convmem.imports.service import (
    COMPLETED,
    FAILED,
    IMPORT_KIND,
    PENDING,
    UPLOAD_GRACE,
    upload_of,
)
from convmem.imports.storage import LocalStorage, Storage, Upload
from convmem.ingest import prebuild
from convmem.ingest.csv_source import CsvSource, SourceError
from convmem.ingest.loading import live_schema, refresh_statistics_if_due
from convmem.ingest.pipeline import (
    BatchResult,
    ColumnMap,
    Counts,
    MissingColumns,
    Problem,
    apply_batch,
    column_map,
)
from convmem.ingest.report import MAX_WARNING_LINES, ReportState
from convmem.kit.db import utcnow
from convmem.kit.gcpause import gc_paused
from convmem.operations.jobs import JobContext, JobFailed, JobHandlers, LeaseLost, retrying_step
from convmem.profiles.rules import StoreSchema
from convmem.settings import Settings

log = logging.getLogger("convmem.imports")

# More failed rows than this fail the import.
MAX_FAILED_ROWS = 100


class _StoreGone(Exception):
    """The store was deleted (or is being deleted) during the import."""


class _DryRunDone(Exception):
    """Rolls the dry run's transaction back."""


@dataclass(frozen=True)
class _Batch:
    """A batch ready to commit: its rows, the number of its last row (None:
    an empty last batch), how far into the file it reaches, and how to write
    it under the store's schema as it is at the commit."""

    rows: int
    last_row: int | None
    bytes_read: int
    write: Callable[[Session, StoreSchema], BatchResult]


class ImportJob:
    def __init__(self, ctx: JobContext, storage: Storage, settings: Settings) -> None:
        assert ctx.store_id is not None
        self.ctx = ctx
        self.storage = storage
        self.settings = settings
        self.store_id = ctx.store_id
        self.import_id: str = ctx.payload["importId"]
        self.schemas: dict[str, Any] = {}
        checkpoint = ctx.checkpoint
        self.done_row: int = checkpoint.get("row", 1)
        self.counts = Counts(**checkpoint.get("counts", {}))
        self.lines: int = checkpoint.get("lines", 0)
        self.warning_lines: int = checkpoint.get("warningLines", 0)
        self._pending: tuple[Counts, int, int, int] | None = None
        self.upload: Upload | None = None

    # -- the whole job ----------------------------------------------------------

    def run(self) -> None:
        with self.ctx.step() as session:
            row = repo.get(session, self.store_id, self.import_id)
            if row is None or row.status in (COMPLETED, FAILED):
                self.ctx.finish(resource_id=self.import_id)  # store deleted, or done
                if row is None:  # a file uploaded for it has no use left
                    self.storage.discard(Upload(self.store_id, self.import_id, 0, utcnow()))
                return
            upload, status = upload_of(row), row.status
            self.upload = upload
            mappings = [
                (m["columnName"], m["traitGroup"], m["traitName"]) for m in row.column_mappings
            ]
            dry_run = row.dry_run
        size = self.storage.size(upload)
        if size is None:
            self._wait_for(upload)
        if size != upload.file_size:
            self.fail(
                f"the uploaded file has {size} bytes but the import declared "
                f"fileSize {upload.file_size}"
            )
        if status == PENDING:  # a bucket upload: nobody told us, we found it
            with self.ctx.step() as session:
                now = utcnow()
                repo.mark_uploaded(
                    session, self.store_id, self.import_id, uploaded_at=now, updated_at=now
                )
        with self.storage.open(upload) as stream:
            try:
                source = CsvSource(stream)
                columns = column_map(source.header, mappings)
            except (SourceError, MissingColumns) as exc:
                self.fail(str(exc))
            try:
                if dry_run:
                    self._dry_run(source, columns, upload)
                elif self._prebuilding(upload):
                    self._write_built(columns, upload, mappings)
                else:
                    self._write(source, columns, upload)
            except _StoreGone:
                self.fail("the store was deleted")
        self.storage.discard(upload)

    def _wait_for(self, upload: Upload) -> None:
        now = utcnow()
        deadline = upload.expires_at + UPLOAD_GRACE
        if now > deadline:
            self.fail("the file was not uploaded before its upload URL expired")
        if self.storage.receives_uploads:
            # The upload itself wakes the job; otherwise wake up to fail it.
            self.ctx.defer((deadline - now).total_seconds() + 1)
        self.ctx.defer(self.settings.upload_poll_seconds)

    def fail(self, message: str) -> None:
        """Mark the import FAILED (what was committed stays) and stop."""
        with self.ctx.step() as session:
            repo.save(
                session,
                self.store_id,
                self.import_id,
                status=FAILED,
                detail=message[:1024],
                updated_at=utcnow(),
            )
        log.info("import failed", extra={"import": self.import_id, "detail": message[:200]})
        if self.upload is not None:
            self.storage.discard(self.upload)  # the file is of no further use
        raise JobFailed(message, code=20400, title="Import failed")

    # -- writing ------------------------------------------------------------------

    def _batches(self, source: CsvSource) -> Iterator[list[tuple[int, list[str]]]]:
        size = self.settings.import_batch_size
        batch: list[tuple[int, list[str]]] = []
        rows = source.rows()
        while True:
            try:
                number, cells = next(rows)
            except StopIteration:
                break
            except SourceError as exc:
                self.fail(f"{exc} ({self.counts.rows:,} rows before it were processed)")
            if number <= self.done_row:
                continue  # committed by an earlier attempt
            batch.append((number, cells))
            if len(batch) >= size:
                yield batch
                batch = []
        yield batch  # the last one, maybe empty: it completes the import

    def _write(self, source: CsvSource, columns: ColumnMap, upload: Upload) -> None:
        def ready(batch: list[tuple[int, list[str]]]) -> _Batch:
            return _Batch(
                len(batch),
                batch[-1][0] if batch else None,
                source.bytes_read,
                lambda session, schema: apply_batch(session, self.store_id, schema, columns, batch),
            )

        self._write_each((ready(batch) for batch in self._batches(source)), upload)

    def _write_each(self, batches: Iterator[_Batch], upload: Upload) -> None:
        while not self.ctx.finished:
            # Reading a batch and writing it allocate millions of short-lived
            # objects: the collector runs between batches, not inside them.
            with gc_paused():
                batch = next(batches, None)
                if batch is None:
                    return
                self._retrying(functools.partial(self._commit, batch=batch, upload=upload))

    def _prebuilding(self, upload: Upload) -> bool:
        """Whether a second process builds the batches (ingest.prebuild): a
        large file on local storage, SQLite, no fuzzy idType, and a second
        core for it (on one core it would only add the hand-over)."""
        if not (
            isinstance(self.storage, LocalStorage)
            and self.ctx.db.is_sqlite
            and upload.file_size >= self.settings.import_prebuild_bytes
            and (os.cpu_count() or 1) > 1
        ):
            return False
        with self.ctx.step() as session:
            return prebuild.can_prebuild(self._schema(session))

    def _write_built(
        self, columns: ColumnMap, upload: Upload, mappings: list[tuple[str, str, str]]
    ) -> None:
        assert isinstance(self.storage, LocalStorage)
        with self.ctx.step() as session:
            schema = self._schema(session)
        builder = prebuild.Builder(
            self.storage.path(upload),
            mappings,
            schema,
            self.store_id,
            start_row=self.done_row,
            batch_size=self.settings.import_batch_size,
        )
        try:
            self._write_each(self._built(builder, columns, schema), upload)
        finally:
            builder.close()

    def _built(
        self, builder: prebuild.Builder, columns: ColumnMap, schema: StoreSchema
    ) -> Iterator[_Batch]:
        def writer(built: prebuild.Built) -> Callable[[Session, StoreSchema], BatchResult]:
            def write(session: Session, current: StoreSchema) -> BatchResult:
                if current == schema:
                    return prebuild.apply(session, self.store_id, current, columns, built)
                # The store's schema changed since the batch was built.
                return apply_batch(session, self.store_id, current, columns, built.batch)

            return write

        try:
            for built in builder:
                yield _Batch(built.rows, built.last_row or None, built.bytes_read, writer(built))
        except SourceError as exc:
            self.fail(f"{exc} ({self.counts.rows:,} rows before it were processed)")

    def _retrying(self, work: Callable[[Session], None]) -> None:
        self._pending = None
        retrying_step(self.ctx, work)
        if self._pending is not None:  # set by the attempt that committed
            self.counts, self.lines, self.warning_lines, self.done_row = self._pending

    def _schema(self, session: Session) -> StoreSchema:
        schema = live_schema(
            session, account_sid=self.ctx.account_sid, store_id=self.store_id, cache=self.schemas
        )
        if schema is None:
            raise _StoreGone
        return schema

    def _commit(self, session: Session, *, batch: _Batch, upload: Upload) -> None:
        """Write a batch, its report lines, the import's counts and the
        checkpoint in one transaction."""
        counts = Counts(**self.counts.as_json())
        problems: list[Problem] = []
        last = batch.rows < self.settings.import_batch_size
        if batch.rows:
            refresh_statistics_if_due(
                session,
                self.ctx.checkpoint,
                rows_done=self.counts.rows,
                batch_size=self.settings.import_batch_size,
            )
            with gc_paused():
                result = batch.write(session, self._schema(session))
            counts.add(result.counts)
            problems = result.problems
        lines, warning_lines, rows = self._report(problems)
        repo.add_lines(session, rows)
        values: dict[str, Any] = {
            "counts": _counts_json(counts),
            "progress": 1.0 if last else min(batch.bytes_read / upload.file_size, 0.99),
            "updated_at": utcnow(),
        }
        failed = counts.failed > MAX_FAILED_ROWS
        if failed:
            values.update(
                status=FAILED,
                detail=f"more than {MAX_FAILED_ROWS} rows failed ({counts.failed:,} of "
                f"{counts.rows:,} so far); the rows written before stay, see the report",
            )
        elif last:
            values["status"] = COMPLETED
        repo.save(session, self.store_id, self.import_id, **values)
        if batch.last_row is not None:
            self.ctx.checkpoint["row"] = batch.last_row
        self.ctx.checkpoint.update(counts=counts.as_json(), lines=lines, warningLines=warning_lines)
        if last or failed:
            self.ctx.finish(resource_id=self.import_id)
        # Taken up once the caller's step has committed (see _retrying).
        self._pending = (counts, lines, warning_lines, batch.last_row or self.done_row)

    def _report(self, problems: Iterable[Problem]) -> tuple[int, int, list[dict[str, Any]]]:
        state = ReportState(self.lines, self.warning_lines)
        rows = state.lines_for(problems, store_id=self.store_id, import_id=self.import_id)
        return state.lines, state.warning_lines, rows

    # -- dry run ------------------------------------------------------------------

    def _dry_run(self, source: CsvSource, columns: ColumnMap, upload: Upload) -> None:
        """Everything an import does, in one transaction that is rolled back."""
        counts = Counts()
        problems: list[Problem] = []
        warnings_kept = 0
        try:
            with self.ctx.db.transaction(write=True) as session:
                schema = self._schema(session)
                for batch in self._batches(source):
                    if self.ctx.lost.is_set():
                        raise LeaseLost(self.ctx.op_id)
                    if batch:
                        with gc_paused():
                            result = apply_batch(session, self.store_id, schema, columns, batch)
                        counts.add(result.counts)
                        # Held until the rollback: only what the report keeps.
                        for p in result.problems:
                            if p.warning:
                                if warnings_kept >= MAX_WARNING_LINES:
                                    continue
                                warnings_kept += 1
                            problems.append(p)
                    if counts.failed > MAX_FAILED_ROWS:
                        break
                raise _DryRunDone
        except _DryRunDone:
            pass
        self.counts = Counts()
        self.done_row = 1

        def record(session: Session) -> None:
            # The counts of what would have happened; nothing else is kept.
            _, _, rows = self._report(problems)
            repo.add_lines(session, rows)
            values: dict[str, Any] = {
                "counts": _counts_json(counts),
                "progress": 1.0,
                "updated_at": utcnow(),
                "status": COMPLETED,
            }
            if counts.failed > MAX_FAILED_ROWS:
                values.update(
                    status=FAILED,
                    detail=f"more than {MAX_FAILED_ROWS} rows would fail; see the report",
                )
            repo.save(session, self.store_id, self.import_id, **values)
            self.ctx.finish(resource_id=self.import_id)

        self._retrying(record)


def _counts_json(counts: Counts) -> dict[str, int]:
    body = counts.as_json()
    body["processed"] = (
        counts.created + counts.updated + counts.merged + counts.unchanged + counts.failed
    )
    return body


def jobs(storage: Callable[[], Storage], settings: Settings) -> JobHandlers:
    def run_import(ctx: JobContext) -> None:
        ImportJob(ctx, storage(), settings).run()

    return {IMPORT_KIND: run_import}
