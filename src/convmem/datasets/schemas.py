from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from convmem.datasets.models import Dataset
from convmem.datasets.sources import masked_url
from convmem.kit.schemas import Meta, RequestModel, Upper, timestamp

DatasetName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z][a-zA-Z0-9_.\-]*$")
]
DATASET_KINDS = ("DATASET_WAREHOUSE", "DATASET_CLOUDAPP")
# A table name, optionally schema-qualified: quoted by SQLAlchemy, never pasted.
TableName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$",
    ),
]


class SourceIn(RequestModel):
    type: Annotated[Literal["CSV", "PARQUET", "SQL"], Upper]
    location: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    table: TableName | None = None
    query: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> SourceIn:
        if self.type in ("CSV", "PARQUET"):
            if self.location is None:
                raise ValueError(
                    f"a {self.type} source needs `location` (a path or s3://bucket/key)"
                )
            if self.url or self.table or self.query:
                raise ValueError(f"a {self.type} source takes `location` only")
        else:
            if self.url is None:
                raise ValueError("a SQL source needs `url` (a SQLAlchemy URL)")
            if (self.table is None) == (self.query is None):
                raise ValueError("a SQL source needs exactly one of `table` and `query`")
            if self.location:
                raise ValueError("a SQL source takes `url` with `table` or `query`")
        return self

    def spec(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class DatasetCreate(RequestModel):
    displayName: DatasetName
    kind: Annotated[Literal["DATASET_WAREHOUSE", "DATASET_CLOUDAPP"], Upper] = "DATASET_WAREHOUSE"
    source: SourceIn


class FieldOut(BaseModel):
    name: str
    dataType: str
    nativeType: str


class DatasetOut(BaseModel):
    id: str
    displayName: str
    kind: str
    source: dict[str, Any]
    fields: list[FieldOut]
    primaryKey: str | None = None
    version: int
    createdAt: str
    updatedAt: str


class DatasetPage(BaseModel):
    datasets: list[DatasetOut]
    meta: Meta


class SchemaChanges(BaseModel):
    added: list[str]
    removed: list[str]
    retyped: list[dict[str, str]]


class DatasetRefreshed(BaseModel):
    dataset: DatasetOut
    changes: SchemaChanges


def masked_source(source: dict[str, Any]) -> dict[str, Any]:
    shown = dict(source)
    if "url" in shown:
        shown["url"] = masked_url(shown["url"])
    return shown


def dataset_json(row: Dataset) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "displayName": row.display_name,
        "kind": row.kind,
        "source": masked_source(row.source),
        "fields": row.fields,
    }
    if row.primary_key:
        body["primaryKey"] = row.primary_key
    body.update(
        version=row.version,
        createdAt=timestamp(row.created_at),
        updatedAt=timestamp(row.updated_at),
    )
    return body
