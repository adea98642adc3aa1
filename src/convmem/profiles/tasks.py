"""Background jobs on profile data that other domains' changes call for.

Each walks the store's rows in key order, a bounded window per step, and
commits its cursor with the step's changes, so a killed worker resumes where
the last committed step ended.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from convmem.identity import service as identity
from convmem.operations.jobs import JobContext, JobHandlers
from convmem.profiles import repository as repo
from convmem.profiles import trait_values
from convmem.profiles.store_schema import id_config
from convmem.traits.service import PURGE_VALUES_KIND

log = logging.getLogger("convmem.profiles")

# Rows read per step for every `job_batch_size` rows written.
_READ_FACTOR = 10


def purge_trait_values(ctx: JobContext) -> None:
    """Delete the values of deleted trait definitions (already hidden from reads)."""
    assert ctx.store_id is not None
    dead = set(ctx.payload["defKeys"])
    window = ctx.batch_size * _READ_FACTOR
    while True:
        with ctx.step() as session:
            rows = trait_values.window(session, ctx.store_id, _after(ctx.checkpoint), window)
            doomed = [v for v in trait_values.expand(rows) if v.def_key in dead]
            trait_values.remove(
                session,
                ctx.store_id,
                [(v.profile_id, v.group_name, v.name) for v in doomed],
                def_keys=[v.def_key for v in doomed],
            )
            ctx.checkpoint["deleted"] = ctx.checkpoint.get("deleted", 0) + len(doomed)
            if rows:
                ctx.checkpoint["groupCursor"] = [rows[-1].profile_id, rows[-1].group_name]
            if len(rows) < window:
                ctx.finish(resource_id=ctx.payload["group"], result_path=ctx.payload["resultPath"])
        if ctx.finished:
            break
    log.info("trait values purged", extra={"operation": ctx.op_id, **ctx.checkpoint})


def _after(checkpoint: dict[str, Any]) -> tuple[str, str] | None:
    """Where a purge goes on: after (profile_id, group_name). A job saved
    before values were stored per group has a (profile_id, trait key) "cursor":
    it goes on with that profile's groups (removing a value is idempotent)."""
    if cursor := checkpoint.get("groupCursor"):
        return (cursor[0], cursor[1])
    if cursor := checkpoint.get("cursor"):
        return (cursor[0], "")
    return None


def reindex_identifiers(ctx: JobContext) -> None:
    """Bring stored identifiers in line with their idType's current settings.

    Each step reads the settings afresh, so a later change wins, and writes
    only the rows that differ."""
    assert ctx.store_id is not None
    window = ctx.batch_size * _READ_FACTOR
    # Per idType: where to go on, or None once it is done.
    cursors: dict[str, list[str] | None] = ctx.checkpoint.setdefault("cursors", {})
    for id_type in ctx.payload["idTypes"]:
        while cursors.get(id_type, []) is not None:
            with ctx.step() as session:
                cursors[id_type] = _reindex_window(ctx, session, id_type, window)
    with ctx.step():
        ctx.finish(resource_id=ctx.store_id, result_path=ctx.payload["resultPath"])


def _reindex_window(
    ctx: JobContext, session: Session, id_type: str, window: int
) -> list[str] | None:
    assert ctx.store_id is not None
    configs = identity.get(session, store_id=ctx.store_id).identifier_configs
    config = next((c for c in configs if c["idType"] == id_type), None)
    if config is None:  # no longer configured: nothing left to follow
        return None
    wanted = id_config(config)
    cursor = ctx.checkpoint["cursors"].get(id_type)
    after = (cursor[0], cursor[1]) if cursor else None
    rows = repo.identifier_window(session, ctx.store_id, id_type, after, window)
    stale = [
        row
        for row in rows
        if row.fuzzy != wanted.fuzzy
        or row.scope != repo.unique_scope(wanted.unique, row.profile_id)
    ]
    repo.set_identifier_flags(
        session, ctx.store_id, id_type, stale, fuzzy=wanted.fuzzy, unique=wanted.unique
    )
    ctx.checkpoint["updated"] = ctx.checkpoint.get("updated", 0) + len(stale)
    return None if len(rows) < window else [rows[-1].value, rows[-1].profile_id]


JOBS: JobHandlers = {
    PURGE_VALUES_KIND: purge_trait_values,
    identity.REINDEX_KIND: reindex_identifiers,
}
