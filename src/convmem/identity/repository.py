from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from convmem.identity.models import IdentityResolutionSettings
from convmem.kit.db import bump_version


def get(session: Session, store_id: str) -> IdentityResolutionSettings | None:
    return session.get(IdentityResolutionSettings, store_id)


def add(session: Session, row: IdentityResolutionSettings) -> None:
    session.add(row)
    session.flush()


def update_versioned(
    session: Session, *, store_id: str, expected_version: int | None, **values: Any
) -> bool:
    return bump_version(
        session,
        IdentityResolutionSettings,
        IdentityResolutionSettings.store_id == store_id,
        expected_version=expected_version,
        **values,
    )
