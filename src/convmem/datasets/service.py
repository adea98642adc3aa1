"""Dataset use cases: register (reading the schema), read, list, refresh, delete.

Reading a source can take seconds (a remote database, an S3 object), so it is
done before the transaction that records what it found, never inside one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from convmem.datasets import repository
from convmem.datasets.models import Dataset
from convmem.datasets.schemas import DatasetCreate
from convmem.datasets.sources import Description, SourceError, open_source
from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import (
    DatasetNameTaken,
    DatasetNotFound,
    ValidationFailed,
    WriteConflict,
)
from convmem.kit.hooks import Hooks
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.settings import Settings


def describe(spec: dict[str, Any], settings: Settings) -> Description:
    """The source's fields, read from the source (no database transaction)."""
    try:
        return open_source(spec, settings).describe()
    except SourceError as exc:
        raise ValidationFailed(f"source: {exc}") from None


def check_id(dataset_id: str) -> None:
    ids.require(
        ids.DATASET_ID, dataset_id, field="datasetId", prefix=ids.DATASET, error=ValidationFailed
    )


def get(session: Session, *, account_sid: str, dataset_id: str) -> Dataset:
    check_id(dataset_id)
    row = repository.get(session, account_sid=account_sid, dataset_id=dataset_id)
    if row is None:
        raise DatasetNotFound(f"Dataset {dataset_id} not found")
    return row


def list_datasets(session: Session, *, account_sid: str, page: PageRequest) -> Page[Dataset]:
    return paginate(
        session,
        repository.list_query(account_sid=account_sid),
        Dataset.id,
        page,
        key_of=lambda d: d.id,
        scope="datasets",
    )


def _fields(description: Description) -> list[dict[str, str]]:
    return [f.as_json() for f in description.fields]


def create(
    session: Session, *, account_sid: str, data: DatasetCreate, description: Description
) -> Dataset:
    if repository.name_taken(session, account_sid=account_sid, display_name=data.displayName):
        raise DatasetNameTaken(f"A dataset named '{data.displayName}' already exists")
    now = utcnow()
    row = Dataset(
        account_sid=account_sid,
        id=ids.new_id(ids.DATASET),
        display_name=data.displayName,
        kind=data.kind,
        source=data.source.spec(),
        fields=_fields(description),
        primary_key=description.key,
        version=1,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, row)
    return row


@dataclass(frozen=True)
class Changes:
    added: list[str]
    removed: list[str]
    retyped: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "retyped": self.retyped}


def changes(before: list[dict[str, str]], after: list[dict[str, str]]) -> Changes:
    old = {f["name"]: f["dataType"] for f in before}
    new = {f["name"]: f["dataType"] for f in after}
    return Changes(
        added=[n for n in new if n not in old],
        removed=[n for n in old if n not in new],
        retyped=[
            {"name": n, "from": old[n], "to": new[n]} for n in new if n in old and old[n] != new[n]
        ],
    )


def refresh(
    session: Session,
    *,
    account_sid: str,
    dataset_id: str,
    version: int,
    description: Description,
) -> tuple[Dataset, Changes]:
    """Store the schema read again at `version` (409 if the dataset changed meanwhile)."""
    row = get(session, account_sid=account_sid, dataset_id=dataset_id)
    fields = _fields(description)
    found = changes(row.fields, fields)
    if not repository.save_schema(
        session,
        account_sid=account_sid,
        dataset_id=dataset_id,
        version=version,
        fields=fields,
        primary_key=description.key,
        updated_at=utcnow(),
    ):
        raise WriteConflict("The dataset changed during the refresh; refresh it again")
    session.expire(row)
    return get(session, account_sid=account_sid, dataset_id=dataset_id), found


def delete(session: Session, *, account_sid: str, dataset_id: str, hooks: Hooks) -> None:
    get(session, account_sid=account_sid, dataset_id=dataset_id)
    hooks.dataset_deleting(session, account_sid, dataset_id)
    repository.remove(session, account_sid=account_sid, dataset_id=dataset_id)
