"""All SQL of datasets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from convmem.datasets.models import Dataset
from convmem.kit.db import affected


def add(session: Session, row: Dataset) -> None:
    session.add(row)
    session.flush()


def get(session: Session, *, account_sid: str, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, (account_sid, dataset_id))


def name_taken(session: Session, *, account_sid: str, display_name: str) -> bool:
    stmt = select(Dataset.id).where(
        Dataset.account_sid == account_sid, Dataset.display_name == display_name
    )
    return session.scalar(stmt) is not None


def list_query(*, account_sid: str) -> Select[Any]:
    return select(Dataset).where(Dataset.account_sid == account_sid)


def save_schema(
    session: Session, *, account_sid: str, dataset_id: str, version: int, **values: Any
) -> bool:
    """Compare-and-set on the version the caller read."""
    stmt = (
        update(Dataset)
        .where(
            Dataset.account_sid == account_sid,
            Dataset.id == dataset_id,
            Dataset.version == version,
        )
        .values(version=version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    return affected(session, stmt) == 1


def remove(session: Session, *, account_sid: str, dataset_id: str) -> None:
    session.execute(
        delete(Dataset)
        .where(Dataset.account_sid == account_sid, Dataset.id == dataset_id)
        .execution_options(synchronize_session=False)
    )
