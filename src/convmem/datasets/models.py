from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.kit.db import Base, JSONType, UTCDateTime


class Dataset(Base):
    """A registered source. Datasets belong to an account, like stores."""

    __tablename__ = "datasets"
    __table_args__ = (
        Index("uq_datasets_account_sid_display_name", "account_sid", "display_name", unique=True),
    )

    account_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    # As given, credentials included: never rendered without masking.
    source: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # [{name, dataType, nativeType}], read from the source.
    fields: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    primary_key: Mapped[str | None] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
