from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from convmem.identity.models import IdentityResolutionSettings
from convmem.kit.db import affected


def get(session: Session, store_id: str) -> IdentityResolutionSettings | None:
    return session.get(IdentityResolutionSettings, store_id)


def add(session: Session, row: IdentityResolutionSettings) -> None:
    session.add(row)
    session.flush()


def update_versioned(
    session: Session, *, store_id: str, expected_version: int | None, **values: Any
) -> bool:
    query = update(IdentityResolutionSettings).where(
        IdentityResolutionSettings.store_id == store_id
    )
    if expected_version is not None:
        query = query.where(IdentityResolutionSettings.version == expected_version)
    changed = affected(
        session,
        query.values(version=IdentityResolutionSettings.version + 1, **values).execution_options(
            synchronize_session=False
        ),
    )
    return bool(changed == 1)
