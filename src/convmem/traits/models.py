from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.kit.db import Base, JSONType, UTCDateTime


class TraitGroup(Base):
    __tablename__ = "trait_groups"
    __table_args__ = (Index("ix_trait_groups_store_id_sort_key", "store_id", "sort_key"),)

    store_id: Mapped[str] = mapped_column(String(64), ForeignKey("stores.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Creation-ordered key (a UUIDv7 TypeID) that lists are paginated on.
    sort_key: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(1024))
    version: Mapped[int] = mapped_column(default=1)
    is_system: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TraitDefinition(Base):
    __tablename__ = "trait_definitions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store_id", "group_name"], ["trait_groups.store_id", "trait_groups.name"]
        ),
        Index(
            "ix_trait_definitions_store_id_group_name_sort_key",
            "store_id",
            "group_name",
            "sort_key",
        ),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sort_key: Mapped[str] = mapped_column(String(64))
    data_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(1024))
    validation_rule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    id_type_promotion: Mapped[str | None] = mapped_column(String(30))
    # System traits (Contact email/phone) cannot be deleted or retyped.
    is_protected: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
