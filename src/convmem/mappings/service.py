"""Data mapping use cases: create, read, list, update, delete, and the checks
that keep a mapping writable (its traits exist, its fields fit them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from convmem.datasets import repository as datasets
from convmem.datasets.models import Dataset
from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import (
    DataMappingNameTaken,
    DataMappingNotFound,
    DatasetNotFound,
    InUse,
    PreconditionFailed,
    TraitGroupInUse,
    ValidationFailed,
)
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.mappings import repository, rules, runs
from convmem.mappings.models import INGRESS, DataMapping
from convmem.mappings.schemas import (
    DATASET_TYPES,
    DataMappingCreate,
    DataMappingPatch,
    MappingItemIn,
)
from convmem.operations import service as operations
from convmem.operations.models import Operation
from convmem.profiles import store_schema
from convmem.stores import repository as stores
from convmem.stores.models import Store, StoreRef

LIST_TYPES = {
    "INGRESS": (INGRESS,),
    "DATASET": DATASET_TYPES,
    "DATASET_CLOUDAPP": ("DATASET_CLOUDAPP",),
    "DATASET_WAREHOUSE": ("DATASET_WAREHOUSE",),
}
MAPPING_ID = ids.DATA_MAPPING_ID


def mapping_path(store_id: str, mapping_id: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}/DataMappings/{mapping_id}"


def _ref(store: Store) -> StoreRef:
    return StoreRef(store.id, store.account_sid, store.status, store.schema_version)


def check_id(mapping_id: str) -> None:
    ids.require(
        MAPPING_ID,
        mapping_id,
        field="dataMappingId",
        prefix=ids.DATA_MAPPING,
        error=ValidationFailed,
    )


def get(session: Session, *, store_id: str, mapping_id: str) -> DataMapping:
    check_id(mapping_id)
    row = repository.get(session, store_id=store_id, mapping_id=mapping_id)
    if row is None:
        raise DataMappingNotFound(f"Data mapping {mapping_id} not found in store {store_id}")
    return row


def list_mappings(
    session: Session, *, store_id: str, page: PageRequest, type_filter: str | None
) -> Page[DataMapping]:
    types = None
    if type_filter is not None:
        types = LIST_TYPES.get(type_filter.upper())
        if types is None:
            raise ValidationFailed(
                f"query parameter type: '{type_filter[:40]}' is not one of "
                "INGRESS, DATASET_CLOUDAPP, DATASET_WAREHOUSE"
            )
    return paginate(
        session,
        repository.list_query(store_id=store_id, types=types),
        DataMapping.id,
        page,
        key_of=lambda m: m.id,
        scope="dataMappings",
    )


def items_of(mappings: list[dict[str, str]]) -> list[rules.Item]:
    return [rules.Item(m["expression"], m["traitGroup"], m["traitName"]) for m in mappings]


def dataset_fields(dataset: Dataset) -> dict[str, str]:
    return {f["name"]: f["dataType"] for f in dataset.fields}


def is_sql(dataset: Dataset) -> bool:
    return dataset.source.get("type") == "SQL"


def _dataset(session: Session, store: Store, dataset_id: str) -> Dataset:
    ids.require(
        ids.DATASET_ID,
        dataset_id,
        field="mappingFrom.datasetId",
        prefix=ids.DATASET,
        error=ValidationFailed,
    )
    dataset = datasets.get(session, account_sid=store.account_sid, dataset_id=dataset_id)
    if dataset is None:
        raise DatasetNotFound(f"Dataset {dataset_id} not found (register it first)")
    return dataset


def _validate(
    session: Session,
    store: Store,
    *,
    items: list[rules.Item],
    source_type: str,
    dataset: Dataset | None,
    columns: list[str] | None,
    sync: dict[str, Any] | None,
) -> None:
    schema = store_schema.load(session, _ref(store))
    fields = dataset_fields(dataset) if dataset is not None else None
    rules.check_items(items, schema, source_fields=fields, columns=columns)
    if dataset is None:
        if sync:
            raise ValidationFailed("sync: INGRESS mappings receive rows; they have no sync")
        return
    assert fields is not None
    rules.sync_key(
        sync, source_fields=fields, primary_key=dataset.primary_key, is_sql=is_sql(dataset)
    )


def _items(mappings: list[MappingItemIn]) -> list[dict[str, str]]:
    return [m.as_json() for m in mappings]


def create(session: Session, *, store: Store, data: DataMappingCreate) -> Operation:
    stores.lock_store(session, store.id)
    if repository.name_taken(session, store_id=store.id, display_name=data.displayName):
        raise DataMappingNameTaken(
            f"A data mapping named '{data.displayName}' already exists in this store"
        )
    source = data.mappingFrom
    dataset = None
    source_type: str = source.type
    if source.type != INGRESS:
        assert source.datasetId is not None
        dataset = _dataset(session, store, source.datasetId)
        if source.type != "DATASET" and source.type != dataset.kind:
            raise ValidationFailed(
                f"mappingFrom.type: dataset {dataset.id} is a {dataset.kind} dataset, "
                f"not {source.type}"
            )
        source_type = dataset.kind
    mappings = _items(data.mappingTo.mappings)
    sync = data.sync.as_json() if data.sync else None
    _validate(
        session,
        store,
        items=items_of(mappings),
        source_type=source_type,
        dataset=dataset,
        columns=source.columns,
        sync=sync,
    )
    now = utcnow()
    row = DataMapping(
        store_id=store.id,
        id=ids.new_id(ids.DATA_MAPPING),
        account_sid=store.account_sid,
        display_name=data.displayName,
        description=data.description,
        is_enabled=data.isEnabled,
        source_type=source_type,
        dataset_id=dataset.id if dataset else None,
        columns=source.columns,
        mappings=mappings,
        sync=sync,
        watermark=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, row)
    schedule(session, row, now=now)
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="dataMapping.create",
        resource_id=row.id,
        result_path=mapping_path(store.id, row.id),
    )


def update(
    session: Session,
    *,
    store: Store,
    mapping_id: str,
    data: DataMappingPatch,
    expected_version: int | None,
) -> Operation:
    row = get(session, store_id=store.id, mapping_id=mapping_id)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if data.displayName is not None and data.displayName != row.display_name:
        if repository.name_taken(
            session, store_id=store.id, display_name=data.displayName, other_than=row.id
        ):
            raise DataMappingNameTaken(
                f"A data mapping named '{data.displayName}' already exists in this store"
            )
        values["display_name"] = data.displayName
    if data.description is not None:
        values["description"] = data.description
    if data.isEnabled is not None:
        values["is_enabled"] = data.isEnabled
    mappings = _items(data.mappingTo.mappings) if data.mappingTo else row.mappings
    if data.mappingTo:
        values["mappings"] = mappings
    sync = row.sync
    if "sync" in data.model_fields_set and data.sync is not None:
        sync = data.sync.as_json()
        values["sync"] = sync
        if (sync or {}).get("cursorField") != (row.sync or {}).get("cursorField"):
            values["watermark"] = None  # a new cursor starts from the beginning
    enabled = values.get("is_enabled", row.is_enabled)
    # What will be written must be valid; a disabled mapping's traits may be
    # gone, so enabling it checks again.
    if data.mappingTo or data.sync is not None or (enabled and not row.is_enabled):
        dataset = None
        if row.dataset_id is not None:
            dataset = _dataset(session, store, row.dataset_id)
        _validate(
            session,
            store,
            items=items_of(mappings),
            source_type=row.source_type,
            dataset=dataset,
            columns=row.columns,
            sync=sync,
        )
    if not repository.bump(
        session,
        store_id=store.id,
        mapping_id=row.id,
        expected_version=expected_version,
        **values,
    ):
        raise PreconditionFailed()
    session.refresh(row)
    schedule(session, row, now=values["updated_at"])
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="dataMapping.update",
        resource_id=row.id,
        result_path=mapping_path(store.id, row.id),
    )


def delete(session: Session, *, store: Store, mapping_id: str) -> Operation:
    row = get(session, store_id=store.id, mapping_id=mapping_id)
    repository.remove(session, store_id=store.id, mapping_id=row.id)
    # A queued or running sync notices the mapping is gone and stops; its
    # history stays until the store is deleted.
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="dataMapping.delete",
        resource_id=row.id,
    )


def schedule(session: Session, row: DataMapping, *, now: dt.datetime) -> None:
    """Queue the next scheduled run of an enabled mapping with an interval,
    unless one is queued or running (one run at a time per mapping)."""
    interval = (row.sync or {}).get("intervalMinutes")
    if not interval or not row.is_enabled or row.source_type == INGRESS:
        return
    stores.lock_store(session, row.store_id)  # one run at a time, also against a manual start
    if repository.active_sync(session, store_id=row.store_id, mapping_id=row.id) is not None:
        return
    mode = "INCREMENTAL" if (row.sync or {}).get("cursorField") else "FULL"
    runs.queue(
        session,
        row,
        mode=mode,
        trigger="SCHEDULED",
        run_after=now + dt.timedelta(minutes=int(interval)),
    )


# -- hooks: what other domains' changes must respect ---------------------------------


def traits_removing(session: Session, store_id: str, group: str, names: list[str] | None) -> None:
    """Refuse to delete a trait group or trait that an enabled mapping writes."""
    for row in repository.enabled_in_store(session, store_id=store_id):
        for item in row.mappings:
            if item["traitGroup"] == group and (names is None or item["traitName"] in names):
                what = (
                    f"trait group '{group}'"
                    if names is None
                    else (f"trait {group}.{item['traitName']}")
                )
                raise TraitGroupInUse(
                    f"The {what} is written by enabled data mapping '{row.display_name}' "
                    f"({row.id}); disable the mapping or remove the trait from it first"
                )


def dataset_deleting(session: Session, account_sid: str, dataset_id: str) -> None:
    """Refuse to delete a dataset a mapping reads."""
    users = repository.using_dataset(session, account_sid=account_sid, dataset_id=dataset_id)
    if users:
        names = ", ".join(f"'{m.display_name}' ({m.id})" for m in users[:5])
        raise InUse(
            f"Dataset {dataset_id} is read by data mapping {names}; delete the mapping first"
        )
