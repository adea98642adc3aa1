from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from convmem.kit.db import Base, JSONType, UTCDateTime


class IdentityResolutionSettings(Base):
    __tablename__ = "identity_resolution_settings"

    store_id: Mapped[str] = mapped_column(String(64), ForeignKey("stores.id"), primary_key=True)
    # Complete IdentifierConfig objects (defaults filled in), in the order given.
    identifier_configs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    matching_rules: Mapped[list[str]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
