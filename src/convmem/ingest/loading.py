"""What a bulk load does besides writing rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from convmem.profiles import repository as profiles
from convmem.profiles import store_schema
from convmem.profiles.rules import StoreSchema
from convmem.stores import repository as stores


def live_schema(
    session: Session, *, account_sid: str, store_id: str, cache: dict[str, Any]
) -> StoreSchema | None:
    """What the store accepts now (cached per schema version in `cache`), or
    None once the store is deleted."""
    ref = stores.get_live_ref(session, account_sid=account_sid, store_id=store_id)
    if ref is None:
        return None
    session.info["schemas"] = cache
    return store_schema.load(session, ref)


def refresh_statistics_if_due(
    session: Session, checkpoint: dict[str, Any], *, rows_done: int, batch_size: int
) -> None:
    """Let the planner look at the profile tables again whenever the rows
    loaded so far doubled (1, 2, 4, 8... batches in): a few ANALYZEs per load,
    recorded in the job's checkpoint (see profiles.repository.refresh_statistics)."""
    batches = rows_done // batch_size
    if batches < 1 or batches & (batches - 1):
        return
    if batches <= checkpoint.get("analyzedAt", 0):
        return
    checkpoint["analyzedAt"] = batches
    profiles.refresh_statistics(session)
