from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.kit.db import Base, UTCDateTime, partial

ACTIVE = "ACTIVE"


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (
        # A deleted store frees its name at once, while its data is purged.
        Index(
            "uq_stores_account_sid_display_name",
            "account_sid",
            "display_name",
            unique=True,
            **partial("deleted_at IS NULL"),
        ),
        Index("ix_stores_account_sid_id", "account_sid", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    display_name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1)
    # Bumped whenever trait groups or identity settings change, so processes
    # can cache what a store accepts and notice any change on their next read.
    schema_version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class StoreRef:
    """What data-plane requests need to know about their store."""

    id: str
    account_sid: str
    status: str
    schema_version: int
