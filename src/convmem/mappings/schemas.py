from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from convmem.ingest.pipeline import Counts
from convmem.kit.schemas import Meta, RequestModel, Upper, timestamp
from convmem.mappings.models import INGRESS, DataMapping, MappingSync

MappingName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z][a-zA-Z0-9-.]*$")
]
Description = Annotated[str, Field(min_length=1, max_length=512)]
SourceField = Annotated[str, Field(min_length=1, max_length=256)]
DATASET_TYPES = ("DATASET_CLOUDAPP", "DATASET_WAREHOUSE")


class MappingItemIn(RequestModel):
    """A source field mapped to a trait. Older documents name the field
    `fieldName`; when both are given, `expression` names it."""

    expression: SourceField | None = None
    fieldName: SourceField | None = None
    traitGroup: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-\.]+$")]
    traitName: Annotated[
        str, Field(min_length=1, max_length=128, pattern=r"^[a-z][a-zA-Z0-9_\-\.]*$")
    ]

    @model_validator(mode="after")
    def _names_a_field(self) -> MappingItemIn:
        if self.expression is None and self.fieldName is None:
            raise ValueError("each mapping needs `expression` (the source field)")
        return self

    @property
    def source_field(self) -> str:
        return self.expression or self.fieldName or ""

    def as_json(self) -> dict[str, str]:
        return {
            "expression": self.source_field,
            "traitGroup": self.traitGroup,
            "traitName": self.traitName,
        }


class MappingToIn(RequestModel):
    type: Annotated[Literal["TRAITS"], Upper] = "TRAITS"
    mappings: Annotated[list[MappingItemIn], Field(min_length=1, max_length=100)]


class MappingFromIn(RequestModel):
    # DATASET is the older spelling of either dataset kind.
    type: Annotated[Literal["INGRESS", "DATASET", "DATASET_CLOUDAPP", "DATASET_WAREHOUSE"], Upper]
    columns: Annotated[list[SourceField], Field(min_length=1, max_length=100)] | None = None
    datasetId: Annotated[str, Field(max_length=64)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> MappingFromIn:
        if self.type == INGRESS:
            if self.columns is None:
                raise ValueError("an INGRESS source needs `columns`")
            if self.datasetId is not None:
                raise ValueError("an INGRESS source takes `columns`, not `datasetId`")
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("`columns` names a column twice")
        else:
            if self.datasetId is None:
                raise ValueError(f"a {self.type} source needs `datasetId`")
            if self.columns is not None:
                raise ValueError(f"a {self.type} source takes `datasetId`, not `columns`")
        return self


class SyncIn(RequestModel):
    """convmem's extension: how the mapping's dataset is synced."""

    cursorField: SourceField | None = None
    keyField: SourceField | None = None
    intervalMinutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = None

    def as_json(self) -> dict[str, Any] | None:
        body = self.model_dump(exclude_none=True)
        return body or None


class DataMappingCreate(RequestModel):
    displayName: MappingName
    description: Description | None = None
    isEnabled: bool = True
    mappingTo: MappingToIn
    mappingFrom: MappingFromIn
    sync: SyncIn | None = None


class DataMappingPatch(RequestModel):
    displayName: MappingName | None = None
    description: Description | None = None
    isEnabled: bool | None = None
    mappingTo: MappingToIn | None = None
    # Replaced whole, as `mappings` is; `{}` removes it.
    sync: SyncIn | None = None
    mappingFrom: Any = None

    @model_validator(mode="after")
    def _source_is_fixed(self) -> DataMappingPatch:
        if self.mappingFrom is not None:
            raise ValueError("`mappingFrom` cannot be changed; create another data mapping")
        return self


class SyncRequest(RequestModel):
    mode: Annotated[Literal["FULL", "INCREMENTAL"], Upper] | None = None


class DataMappingOut(BaseModel):
    id: str
    displayName: str
    description: str | None = None
    isEnabled: bool
    mappingTo: dict[str, Any]
    mappingFrom: dict[str, Any]
    sync: dict[str, Any] | None = None
    version: int
    createdAt: str
    updatedAt: str


class DataMappingPage(BaseModel):
    dataMappings: list[DataMappingOut]
    meta: Meta


class SyncOut(BaseModel):
    id: str
    dataMappingId: str
    status: str
    mode: str
    trigger: str
    counts: dict[str, int]
    errorReportUrl: str
    cursor: Any = None
    message: str | None = None
    createdAt: str
    startedAt: str | None = None
    finishedAt: str | None = None


class SyncPage(BaseModel):
    syncs: list[SyncOut]
    meta: Meta


class RowIn(RequestModel):
    rows: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=1000)]


class RowResult(BaseModel):
    index: int
    status: str
    profileId: str | None = None
    mergedProfileIds: list[str] | None = None
    error: dict[str, str] | None = None


class RowsOut(BaseModel):
    results: list[RowResult]
    counts: dict[str, int]


def mapping_from_json(row: DataMapping) -> dict[str, Any]:
    if row.source_type == INGRESS:
        return {"type": INGRESS, "columns": list(row.columns or [])}
    return {"type": row.source_type, "datasetId": row.dataset_id}


def mapping_json(row: DataMapping) -> dict[str, Any]:
    body: dict[str, Any] = {"id": row.id, "displayName": row.display_name}
    if row.description is not None:
        body["description"] = row.description
    body.update(
        isEnabled=row.is_enabled,
        mappingTo={"type": "TRAITS", "mappings": row.mappings},
        mappingFrom=mapping_from_json(row),
    )
    if row.sync:
        body["sync"] = row.sync
    body.update(
        version=row.version,
        createdAt=timestamp(row.created_at),
        updatedAt=timestamp(row.updated_at),
    )
    return body


def counts_json(counts: Counts) -> dict[str, int]:
    body = counts.as_json()
    body["read"] = body.pop("rows")
    return body


SYNC_COUNTS = ("read", "created", "updated", "merged", "unchanged", "failed", "warnings")


def sync_json(row: MappingSync, status: str, message: str | None, report_url: str) -> Any:
    stored = row.counts or {}
    body: dict[str, Any] = {
        "id": row.id,
        "dataMappingId": row.mapping_id,
        "status": status,
        "mode": row.mode,
        "trigger": row.trigger,
        "counts": {name: int(stored.get(name, 0)) for name in SYNC_COUNTS},
        "errorReportUrl": report_url,
        "cursor": row.cursor,
    }
    if message:
        body["message"] = message
    body["createdAt"] = timestamp(row.created_at)
    body["startedAt"] = timestamp(row.started_at) if row.started_at else None
    body["finishedAt"] = timestamp(row.finished_at) if row.finished_at else None
    return body
