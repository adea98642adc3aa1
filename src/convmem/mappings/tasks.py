"""The sync job: read a mapping's dataset in batches and write them through the
ingest pipeline, one batch per transaction.

Each batch commits with its checkpoint (the source's resume token, the counts,
the report lines so far), so a worker killed mid-run leaves the next one to go
on after the last committed batch: no batch is applied twice. An incremental
run reads rows after the mapping's (cursor, key) watermark in that order, and
moves the watermark when it completes."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from convmem.datasets import repository as datasets
from convmem.datasets.sources import Order, Source, SourceError, open_source
from convmem.ingest.loading import live_schema, refresh_statistics_if_due
from convmem.ingest.pipeline import ColumnMap, Counts, apply_batch, column_map
from convmem.ingest.report import ReportState
from convmem.kit.db import utcnow
from convmem.kit.gcpause import gc_paused
from convmem.mappings import repository as repo
from convmem.mappings import rules, runs, service
from convmem.mappings.models import DataMapping
from convmem.mappings.schemas import counts_json
from convmem.operations.jobs import JobContext, JobFailed, JobHandlers, retrying_step
from convmem.profiles.rules import StoreSchema
from convmem.settings import Settings

log = logging.getLogger("convmem.mappings")

# A sync keeps going past bad rows (they are counted and reported), but its
# report keeps at most this many error lines.
MAX_ERROR_LINES = 10_000


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a run reads: the dataset's source and the fields it registered,
    the mapping's items, and how rows are ordered."""

    source: dict[str, Any]
    registered: dict[str, str]  # field -> type, as registered
    items: list[rules.Item]
    key: str | None
    cursor: str | None
    text: bool  # CSV cells: text, coerced as an import coerces them


class _StoreGone(Exception):
    pass


class _Stopped(Exception):
    """The mapping was deleted or disabled during the run: no more batches."""


class SyncJob:
    def __init__(self, ctx: JobContext, settings: Settings) -> None:
        assert ctx.store_id is not None
        self.ctx = ctx
        self.settings = settings
        self.store_id = ctx.store_id
        self.mapping_id: str = ctx.payload["mappingId"]
        self.sync_id: str = ctx.payload["syncId"]
        checkpoint = ctx.checkpoint
        self.counts = Counts(**checkpoint.get("counts", {}))
        self.report = ReportState(
            checkpoint.get("lines", 0),
            checkpoint.get("warningLines", 0),
            checkpoint.get("errorLines", 0),
            max_errors=MAX_ERROR_LINES,
        )
        self.schemas: dict[str, Any] = {}

    # -- the whole run ----------------------------------------------------------

    def run(self) -> None:
        with self.ctx.step() as session:
            sync = repo.get_sync(session, store_id=self.store_id, sync_id=self.sync_id)
            if sync is None or sync.status in (runs.COMPLETED, runs.FAILED):
                self.ctx.finish(resource_id=self.sync_id)
                return
            mapping = repo.get(session, store_id=self.store_id, mapping_id=self.mapping_id)
            plan = self._plan(session, mapping, sync.trigger)
            if not isinstance(plan, str):
                mode, after = sync.mode, self.ctx.checkpoint.get("after", sync.cursor)
                self.ctx.checkpoint.setdefault("after", after)
                repo.save_sync(
                    session,
                    store_id=self.store_id,
                    sync_id=self.sync_id,
                    status=runs.PROCESSING,
                    started_at=sync.started_at or utcnow(),
                )
        if isinstance(plan, str):
            self.fail(plan)
        try:
            source = open_source(plan.source, self.settings)
            live = {f.name: f.data_type for f in source.describe().fields}
        except SourceError as exc:
            self.fail(f"the dataset cannot be read: {exc}")
        drift = rules.schema_drift(plan.items, plan.registered, live)
        if drift:
            self.fail(
                "the dataset's schema changed: "
                + "; ".join(drift)
                + ". Refresh the dataset (POST /v1/ControlPlane/Datasets/{id}/Refresh) and "
                "check the mapping"
            )
        columns = list(dict.fromkeys(item.field for item in plan.items))
        fields = column_map(
            columns, [(i.field, i.group, i.trait) for i in plan.items], text=plan.text
        )
        order = None
        if mode == "INCREMENTAL" and plan.cursor and plan.key:
            order = Order(plan.cursor, plan.key)
        try:
            self._write(source, columns, fields, after=after, order=order, key=plan.key)
        except _StoreGone:
            self.fail("the store was deleted")
        except _Stopped as exc:
            self.fail(f"{exc} during the sync ({self.counts.rows:,} rows were written before)")
        except SourceError as exc:
            self.fail(f"the dataset cannot be read: {exc} ({self.counts.rows:,} rows written)")

    def _plan(self, session: Session, mapping: DataMapping | None, trigger: str) -> _Plan | str:
        """What the run reads, or why it cannot run."""
        if mapping is None:
            return "the data mapping was deleted"
        if not mapping.is_enabled:
            return "the data mapping is disabled"
        sync = mapping.sync or {}
        if trigger == "SCHEDULED" and not sync.get("intervalMinutes"):
            return "cancelled: the data mapping no longer has a schedule"
        if mapping.dataset_id is None:
            return "INGRESS mappings have nothing to sync"
        dataset = datasets.get(
            session, account_sid=mapping.account_sid, dataset_id=mapping.dataset_id
        )
        if dataset is None:
            return f"dataset {mapping.dataset_id} no longer exists"
        return _Plan(
            source=dict(dataset.source),
            registered=service.dataset_fields(dataset),
            items=service.items_of(mapping.mappings),
            key=sync.get("keyField") or dataset.primary_key,
            cursor=sync.get("cursorField"),
            text=dataset.source.get("type") == "CSV",
        )

    def _fail_in(self, session: Session, message: str, mapping: DataMapping | None) -> None:
        """Mark the sync FAILED in the session's step (committed batches stay);
        a scheduled mapping queues its next run all the same. The job's
        operation fails with it (`fail`)."""
        repo.save_sync(
            session,
            store_id=self.store_id,
            sync_id=self.sync_id,
            status=runs.FAILED,
            detail=message[:1024],
            finished_at=utcnow(),
            counts=counts_json(self.counts),
        )
        if mapping is not None and not message.startswith("cancelled"):
            service.schedule(session, mapping, now=utcnow())
        log.info("sync failed", extra={"sync": self.sync_id, "detail": message[:200]})

    def fail(self, message: str) -> NoReturn:
        """Mark the sync FAILED and stop the job."""
        with self.ctx.step() as session:
            mapping = repo.get(session, store_id=self.store_id, mapping_id=self.mapping_id)
            self._fail_in(session, message, mapping)
        raise JobFailed(message, code=20400, title="Sync failed")

    # -- writing ------------------------------------------------------------------

    def _write(
        self,
        source: Source,
        columns: list[str],
        fields: ColumnMap,
        *,
        after: Any,
        order: Order | None,
        key: str | None,
    ) -> None:
        batches: Iterator[tuple[list[tuple[Any, ...]], Any]] = source.read(
            columns, size=self.settings.sync_batch_size, after=after, order=order, key=key
        )
        while True:
            with gc_paused():
                item = next(batches, None)
            rows, token = item if item is not None else ([], None)
            # The run's own state moves on only once the step has committed.
            self.counts, self.report = retrying_step(
                self.ctx,
                functools.partial(
                    self._commit,
                    fields=fields,
                    rows=rows,
                    token=token,
                    last=item is None,
                    incremental=order is not None,
                ),
            )
            if item is None:
                return

    def _schema(self, session: Session) -> StoreSchema:
        schema = live_schema(
            session, account_sid=self.ctx.account_sid, store_id=self.store_id, cache=self.schemas
        )
        if schema is None:
            raise _StoreGone
        return schema

    def _commit(
        self,
        session: Session,
        fields: ColumnMap,
        rows: list[tuple[Any, ...]],
        token: Any,
        *,
        last: bool,
        incremental: bool,
    ) -> tuple[Counts, ReportState]:
        """One batch with the run's checkpoint; returns the run's counts and
        report state as they are once it commits."""
        mapping = repo.get(session, store_id=self.store_id, mapping_id=self.mapping_id)
        if mapping is None:
            raise _Stopped("the data mapping was deleted")
        if not mapping.is_enabled:
            raise _Stopped("the data mapping was disabled")
        counts = Counts(**self.counts.as_json())
        report = dataclasses.replace(self.report)
        if rows:
            refresh_statistics_if_due(
                session,
                self.ctx.checkpoint,
                rows_done=counts.rows,
                batch_size=self.settings.sync_batch_size,
            )
            numbered = [(counts.rows + n + 1, row) for n, row in enumerate(rows)]
            with gc_paused():
                result = apply_batch(
                    session, self.store_id, self._schema(session), fields, numbered
                )
            counts.add(result.counts)
            repo.add_lines(
                session,
                report.lines_for(result.problems, store_id=self.store_id, sync_id=self.sync_id),
            )
            self.ctx.checkpoint["after"] = token
        values: dict[str, Any] = {"counts": counts_json(counts)}
        if incremental:
            values["cursor"] = self.ctx.checkpoint.get("after")
        if last:
            values.update(status=runs.COMPLETED, finished_at=utcnow())
        repo.save_sync(session, store_id=self.store_id, sync_id=self.sync_id, **values)
        self.ctx.checkpoint.update(
            counts=counts.as_json(),
            lines=report.lines,
            warningLines=report.warning_lines,
            errorLines=report.error_lines,
        )
        if last:
            if incremental and self.ctx.checkpoint.get("after") is not None:
                repo.save(
                    session,
                    store_id=self.store_id,
                    mapping_id=self.mapping_id,
                    watermark=self.ctx.checkpoint["after"],
                )
            service.schedule(session, mapping, now=utcnow())
            self.ctx.finish(resource_id=self.sync_id)
        return counts, report


def jobs(settings: Settings) -> JobHandlers:
    def run_sync(ctx: JobContext) -> None:
        SyncJob(ctx, settings).run()

    return {runs.SYNC_KIND: run_sync}
