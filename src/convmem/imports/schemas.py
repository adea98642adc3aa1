from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from convmem.imports.models import ProfileImport
from convmem.kit.schemas import Meta, RequestModel, timestamp

MAX_FILE_SIZE = 100 * 1024 * 1024
Name = Annotated[str, Field(min_length=1, max_length=64)]


class ColumnMapping(RequestModel):
    columnName: Name
    traitGroup: Name
    traitName: Name


class ImportCreate(RequestModel):
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    fileSize: Annotated[int, Field(ge=1, le=MAX_FILE_SIZE)]
    columnMappings: Annotated[list[ColumnMapping], Field(min_length=2, max_length=100)]


class ImportCreated(BaseModel):
    importId: str
    url: str


class ImportIds(BaseModel):
    imports: list[str]
    meta: Meta


class ImportOut(BaseModel):
    status: str
    filename: str
    createdAt: str
    updatedAt: str | None = None
    fileSize: int | None = None
    columnMappings: list[dict[str, str]] | None = None
    summary: dict[str, int] | None = None
    # convmem's additions (the spec allows more properties here)
    importId: str | None = None
    dryRun: bool | None = None
    counts: dict[str, int] | None = None
    progress: float | None = None
    errorReportUrl: str | None = None
    message: str | None = None


COUNT_NAMES = ("rows", "processed", "created", "updated", "merged", "unchanged", "failed")


def import_json(row: ProfileImport, status: str, message: str | None, report_url: str) -> Any:
    counts = {name: 0 for name in COUNT_NAMES} | {
        k: v for k, v in (row.counts or {}).items() if k in COUNT_NAMES
    }
    body: dict[str, Any] = {
        "status": status,
        "filename": row.filename,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
        "fileSize": row.file_size,
        "columnMappings": row.column_mappings,
        "summary": {
            "errors": (row.counts or {}).get("failed", 0),
            "warnings": (row.counts or {}).get("warnings", 0),
        },
        "importId": row.id,
        "dryRun": row.dry_run,
        "counts": counts,
        "progress": round(row.progress, 4),
        "errorReportUrl": report_url,
    }
    if message:
        body["message"] = message
    return body
