"""Queueing a run of a mapping: its sync row and, in the same transaction, the
background operation that carries it out (`mappings.tasks`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.mappings import repository
from convmem.mappings.models import DataMapping, MappingSync
from convmem.operations import service as operations

SYNC_KIND = "dataMapping.sync"
PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"


def queue(
    session: Session,
    mapping: DataMapping,
    *,
    mode: str,
    trigger: str,
    run_after: dt.datetime | None = None,
) -> MappingSync:
    now = utcnow()
    sync_id = ids.new_id(ids.DATA_SYNC)
    op = operations.enqueue(
        session,
        account_sid=mapping.account_sid,
        store_id=mapping.store_id,
        kind=SYNC_KIND,
        payload={"mappingId": mapping.id, "syncId": sync_id},
    )
    if run_after is not None:
        op.run_after = run_after
    row = MappingSync(
        store_id=mapping.store_id,
        id=sync_id,
        mapping_id=mapping.id,
        operation_id=op.id,
        mode=mode,
        trigger=trigger,
        status=PENDING,
        counts=None,
        cursor=mapping.watermark if mode == "INCREMENTAL" else None,
        created_at=now,
    )
    repository.add(session, row)
    return row
