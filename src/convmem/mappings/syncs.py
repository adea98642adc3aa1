"""Running mappings: start a sync, read syncs, and map rows pushed to an
INGRESS mapping (through the ingest pipeline, like imports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from convmem.ingest.pipeline import REMOVE, BatchResult, Problem, apply_batch, column_map
from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import Conflict, NotFound, ValidationFailed
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.mappings import repository, runs
from convmem.mappings.models import INGRESS, DataMapping, MappingSync
from convmem.mappings.service import get as get_mapping
from convmem.operations import status as op_status
from convmem.profiles import store_schema
from convmem.stores import repository as stores
from convmem.stores.models import Store, StoreRef

UNKNOWN_COLUMN = "UNKNOWN_COLUMN"


class SyncNotFound(NotFound):
    default_message = "Sync not found"


def sync_path(store_id: str, mapping_id: str, sync_id: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}/DataMappings/{mapping_id}/Syncs/{sync_id}"


def start(
    session: Session, *, store: Store, mapping_id: str, mode: str | None
) -> tuple[MappingSync, bool]:
    """Queue a run now: (the sync, whether it was queued already). A mapping
    runs one sync at a time; a scheduled run not yet started is made due now."""
    # Concurrent starts (and a finishing run queueing the next) take turns.
    stores.lock_store(session, store.id)
    mapping = get_mapping(session, store_id=store.id, mapping_id=mapping_id)
    if mapping.source_type == INGRESS:
        raise Conflict(
            f"Data mapping {mapping.id} is an INGRESS mapping: push rows to it "
            f"(POST /v1/Stores/{store.id}/DataMappings/{mapping.id}/Rows); it has nothing to sync"
        )
    if not mapping.is_enabled:
        raise Conflict(f"Data mapping {mapping.id} is disabled; enable it to sync")
    cursor = (mapping.sync or {}).get("cursorField")
    mode = mode or ("INCREMENTAL" if cursor else "FULL")
    if mode == "INCREMENTAL" and not cursor:
        raise ValidationFailed(
            "mode: an INCREMENTAL sync needs sync.cursorField on the data mapping"
        )
    active = repository.active_sync(session, store_id=store.id, mapping_id=mapping.id)
    if active is not None:
        if active.status == runs.PENDING and repository.wake(
            session, active.operation_id, utcnow()
        ):
            repository.save_sync(
                session,
                store_id=store.id,
                sync_id=active.id,
                mode=mode,
                cursor=mapping.watermark if mode == "INCREMENTAL" else None,
            )
            session.refresh(active)
            return active, True
        raise Conflict(
            f"Data mapping {mapping.id} is already syncing ({active.id}, {active.status}); "
            "a mapping runs one sync at a time"
        )
    return runs.queue(session, mapping, mode=mode, trigger="MANUAL"), False


def get(
    session: Session, *, store: Store, mapping_id: str, sync_id: str
) -> tuple[MappingSync, str, str]:
    """The sync with its status and, when it failed, why."""
    get_mapping(session, store_id=store.id, mapping_id=mapping_id)
    ids.require(
        ids.DATA_SYNC_ID, sync_id, field="syncId", prefix=ids.DATA_SYNC, error=ValidationFailed
    )
    row = repository.get_sync(session, store_id=store.id, sync_id=sync_id)
    if row is None or row.mapping_id != mapping_id:
        raise SyncNotFound(f"Sync {sync_id} not found")
    status, message = row.status, row.detail or ""
    if status not in (runs.COMPLETED, runs.FAILED):
        # The job gave up (a crash it could not get past): so does the sync.
        state = repository.operation_state(session, row.operation_id)
        if state is not None and state[0] == op_status.FAILED:
            status = runs.FAILED
            message = str((state[1] or {}).get("detail") or "internal error")
    return row, status, message


def list_syncs(
    session: Session, *, store: Store, mapping_id: str, page: PageRequest
) -> Page[MappingSync]:
    get_mapping(session, store_id=store.id, mapping_id=mapping_id)
    return paginate(
        session,
        repository.syncs_query(store_id=store.id, mapping_id=mapping_id),
        MappingSync.id,
        page,
        key_of=lambda s: s.id,
        scope="syncs",
    )


# -- pushed rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    result: BatchResult
    unknown: dict[int, Problem]


def _cells(row: dict[str, Any], columns: Sequence[str]) -> list[Any]:
    # An absent column writes nothing; JSON null deletes the trait (as in PATCH).
    return [REMOVE if (c in row and row[c] is None) else row.get(c) for c in columns]


def push_rows(
    session: Session, store: StoreRef, *, mapping_id: str, rows: Sequence[dict[str, Any]]
) -> Pushed:
    """Map and resolve pushed rows like a bulk upsert, with an outcome per row
    (one bad row fails alone)."""
    mapping: DataMapping = get_mapping(session, store_id=store.id, mapping_id=mapping_id)
    if mapping.source_type != INGRESS:
        raise Conflict(
            f"Data mapping {mapping.id} reads dataset {mapping.dataset_id}; only INGRESS "
            "mappings accept pushed rows"
        )
    if not mapping.is_enabled:
        raise Conflict(f"Data mapping {mapping.id} is disabled; enable it to push rows")
    columns = list(mapping.columns or [])
    known = set(columns)
    columns_map = column_map(
        columns,
        [(m["expression"], m["traitGroup"], m["traitName"]) for m in mapping.mappings],
        text=False,
    )
    unknown: dict[int, Problem] = {}
    batch: list[tuple[int, list[Any]]] = []
    for index, row in enumerate(rows):
        extra = [k for k in row if k not in known]
        if extra:
            unknown[index] = Problem(
                index,
                extra[0][:255],
                UNKNOWN_COLUMN,
                f"'{extra[0][:64]}' is not one of the mapping's columns "
                f"({', '.join(columns[:20])})",
                "",
            )
            continue
        batch.append((index, _cells(row, columns)))
    schema = store_schema.load(session, store)
    result = apply_batch(session, store.id, schema, columns_map, batch, keep_outcomes=True)
    return Pushed(result, unknown)
