"""All SQL of imports and their reports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from convmem.imports.models import ImportReportLine, ProfileImport
from convmem.ingest.report import read_lines
from convmem.kit.db import affected, core
from convmem.operations.models import Operation


def add(session: Session, row: ProfileImport) -> None:
    session.add(row)
    session.flush()


def get(session: Session, store_id: str, import_id: str) -> ProfileImport | None:
    return session.get(ProfileImport, (store_id, import_id))


def get_by_id(session: Session, import_id: str) -> ProfileImport | None:
    return session.scalar(select(ProfileImport).where(ProfileImport.id == import_id))


def operation_state(session: Session, op_id: str) -> tuple[str, Any] | None:
    """(status, error) of the import's job."""
    row = session.execute(
        select(Operation.status, Operation.error).where(Operation.id == op_id)
    ).first()
    return (row.status, row.error) if row else None


def list_query(store_id: str) -> Select[Any]:
    return select(ProfileImport.id).where(ProfileImport.store_id == store_id)


def mark_uploaded(session: Session, store_id: str, import_id: str, **values: Any) -> bool:
    """PENDING -> PROCESSING once, however many uploads race."""
    return (
        affected(
            session,
            update(ProfileImport)
            .where(
                ProfileImport.store_id == store_id,
                ProfileImport.id == import_id,
                ProfileImport.status == "PENDING",
            )
            .values(status="PROCESSING", **values)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def save(session: Session, store_id: str, import_id: str, **values: Any) -> None:
    session.execute(
        update(ProfileImport)
        .where(ProfileImport.store_id == store_id, ProfileImport.id == import_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def wake(session: Session, op_id: str, now: Any) -> None:
    """Make the import's job due now (it waits for the upload until then)."""
    session.execute(
        update(Operation)
        .where(Operation.id == op_id, Operation.status == "PENDING")
        .values(run_after=now)
        .execution_options(synchronize_session=False)
    )


def add_lines(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        core(session).execute(ImportReportLine.__table__.insert(), list(rows))  # type: ignore[attr-defined]


def report_lines(session: Session, store_id: str, import_id: str) -> Iterator[Any]:
    table = ImportReportLine.__table__
    return read_lines(session, table, store_id=store_id, import_id=import_id)  # type: ignore[arg-type]
