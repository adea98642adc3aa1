"""All SQL of data mappings, their syncs and the syncs' reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.orm import Session

from convmem.ingest.report import read_lines
from convmem.kit.db import affected, bump_version, core
from convmem.mappings.models import DataMapping, MappingSync, SyncReportLine
from convmem.operations.models import Operation

ACTIVE_SYNC = ("PENDING", "PROCESSING")


def add(session: Session, *rows: Any) -> None:
    session.add_all(rows)
    session.flush()


def get(session: Session, *, store_id: str, mapping_id: str) -> DataMapping | None:
    return session.get(DataMapping, (store_id, mapping_id))


def name_taken(
    session: Session, *, store_id: str, display_name: str, other_than: str | None = None
) -> bool:
    stmt = select(DataMapping.id).where(
        DataMapping.store_id == store_id, DataMapping.display_name == display_name
    )
    if other_than is not None:
        stmt = stmt.where(DataMapping.id != other_than)
    return session.scalar(stmt) is not None


def list_query(*, store_id: str, types: Sequence[str] | None) -> Select[Any]:
    stmt = select(DataMapping).where(DataMapping.store_id == store_id)
    if types is not None:
        stmt = stmt.where(DataMapping.source_type.in_(types))
    return stmt


def enabled_in_store(session: Session, *, store_id: str) -> list[DataMapping]:
    return list(
        session.scalars(
            select(DataMapping).where(
                DataMapping.store_id == store_id, DataMapping.is_enabled.is_(True)
            )
        )
    )


def using_dataset(session: Session, *, account_sid: str, dataset_id: str) -> list[DataMapping]:
    return list(
        session.scalars(
            select(DataMapping).where(
                DataMapping.dataset_id == dataset_id, DataMapping.account_sid == account_sid
            )
        )
    )


def bump(
    session: Session,
    *,
    store_id: str,
    mapping_id: str,
    expected_version: int | None,
    **values: Any,
) -> bool:
    return bump_version(
        session,
        DataMapping,
        DataMapping.store_id == store_id,
        DataMapping.id == mapping_id,
        expected_version=expected_version,
        **values,
    )


def save(session: Session, *, store_id: str, mapping_id: str, **values: Any) -> None:
    session.execute(
        update(DataMapping)
        .where(DataMapping.store_id == store_id, DataMapping.id == mapping_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def remove(session: Session, *, store_id: str, mapping_id: str) -> None:
    session.execute(
        delete(DataMapping)
        .where(DataMapping.store_id == store_id, DataMapping.id == mapping_id)
        .execution_options(synchronize_session=False)
    )


# -- syncs -------------------------------------------------------------------------


def get_sync(session: Session, *, store_id: str, sync_id: str) -> MappingSync | None:
    return session.get(MappingSync, (store_id, sync_id))


def syncs_query(*, store_id: str, mapping_id: str) -> Select[Any]:
    return select(MappingSync).where(
        MappingSync.store_id == store_id, MappingSync.mapping_id == mapping_id
    )


def active_sync(session: Session, *, store_id: str, mapping_id: str) -> MappingSync | None:
    row: MappingSync | None = session.scalar(
        syncs_query(store_id=store_id, mapping_id=mapping_id)
        .where(MappingSync.status.in_(ACTIVE_SYNC))
        .order_by(MappingSync.id)
        .limit(1)
    )
    return row


def save_sync(session: Session, *, store_id: str, sync_id: str, **values: Any) -> None:
    session.execute(
        update(MappingSync)
        .where(MappingSync.store_id == store_id, MappingSync.id == sync_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def operation_state(session: Session, op_id: str) -> tuple[str, Any] | None:
    row = session.execute(
        select(Operation.status, Operation.error).where(Operation.id == op_id)
    ).first()
    return (row.status, row.error) if row else None


def wake(session: Session, op_id: str, now: dt.datetime) -> bool:
    """Make a queued sync's job due now; False if it already started."""
    stmt = (
        update(Operation)
        .where(
            Operation.id == op_id,
            Operation.status == "PENDING",
            or_(Operation.run_after > now, Operation.run_after.is_(None)),
        )
        .values(run_after=now)
        .execution_options(synchronize_session=False)
    )
    return affected(session, stmt) == 1


def add_lines(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        core(session).execute(SyncReportLine.__table__.insert(), list(rows))  # type: ignore[attr-defined]


def report_lines(session: Session, store_id: str, sync_id: str) -> Iterator[Any]:
    table = SyncReportLine.__table__
    return read_lines(session, table, store_id=store_id, sync_id=sync_id)  # type: ignore[arg-type]
