from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.ingest.report import ReportLineColumns
from convmem.kit.db import Base, JSONType, UTCDateTime

INGRESS = "INGRESS"


class DataMapping(Base):
    __tablename__ = "data_mappings"
    __table_args__ = (
        Index("uq_data_mappings_store_id_display_name", "store_id", "display_name", unique=True),
        Index("ix_data_mappings_dataset_id", "dataset_id"),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    display_name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(512))
    is_enabled: Mapped[bool] = mapped_column(Boolean)
    # INGRESS, DATASET_CLOUDAPP or DATASET_WAREHOUSE (a dataset's own kind).
    source_type: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str | None] = mapped_column(String(64))
    columns: Mapped[list[str] | None] = mapped_column(JSONType)
    # [{expression, traitGroup, traitName}]
    mappings: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    # convmem's extension: {cursorField, keyField, intervalMinutes}
    sync: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The (cursor, key) of the last row an incremental run committed.
    watermark: Mapped[list[Any] | None] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MappingSync(Base):
    """One run of a mapping: its counts, cursor and status; the job is its operation."""

    __tablename__ = "data_mapping_syncs"
    __table_args__ = (Index("ix_data_mapping_syncs_mapping", "store_id", "mapping_id", "id"),)

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mapping_id: Mapped[str] = mapped_column(String(64))
    operation_id: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))  # FULL | INCREMENTAL
    trigger: Mapped[str] = mapped_column(String(16))  # MANUAL | SCHEDULED
    # PENDING -> PROCESSING -> COMPLETED | FAILED
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    cursor: Mapped[list[Any] | None] = mapped_column(JSONType)
    detail: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SyncReportLine(ReportLineColumns, Base):
    """A line of a sync's report: an error that failed a row, or a warning."""

    __tablename__ = "data_mapping_sync_report"

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sync_id: Mapped[str] = mapped_column(String(64), primary_key=True)
