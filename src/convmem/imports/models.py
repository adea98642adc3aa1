from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.ingest.report import ReportLineColumns
from convmem.kit.db import Base, JSONType, UTCDateTime


class ProfileImport(Base):
    __tablename__ = "profile_imports"
    __table_args__ = (
        # The upload URL names the import alone.
        Index("uq_profile_imports_id", "id", unique=True),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    filename: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(BigInteger)
    column_mappings: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # PENDING (waiting for the file) -> PROCESSING -> COMPLETED | FAILED
    status: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str] = mapped_column(String(64))
    upload_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # Why it FAILED, in words.
    detail: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ImportReportLine(ReportLineColumns, Base):
    """A line of an import's report: an error that failed a row, or a warning."""

    __tablename__ = "profile_import_report"

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    import_id: Mapped[str] = mapped_column(String(64), primary_key=True)
