"""Background purge of a deleted store's data, in checkpointed batches."""

from __future__ import annotations

import logging

from convmem.operations.jobs import JobContext, JobFailed, JobHandlers
from convmem.stores import repository
from convmem.stores.service import DELETE_KIND

log = logging.getLogger("convmem.stores")


def purge_store(ctx: JobContext) -> None:
    store_id = ctx.payload["storeId"]
    with ctx.db.transaction(write=False) as session:
        store = repository.get_any(session, store_id)
        if store is None:
            raise JobFailed(f"Memory Store {store_id} no longer exists", code=520041)
        if store.deleted_at is None:
            raise JobFailed(f"Memory Store {store_id} is not marked deleted", code=520042)
    # checkpoint: rows deleted so far per table. Each batch's rows and its count
    # commit in one transaction, so the counts are exact even across crashes.
    deleted: dict[str, int] = ctx.checkpoint.setdefault("deleted", {})
    for table in repository.store_scoped_tables():
        while True:
            with ctx.step() as session:
                n = repository.purge_batch(session, table, store_id=store_id, limit=ctx.batch_size)
                if n:
                    deleted[table.name] = deleted.get(table.name, 0) + n
                    ctx.checkpoint["batches"] = ctx.checkpoint.get("batches", 0) + 1
            if n < ctx.batch_size:
                break
    with ctx.step() as session:
        repository.delete_row(session, store_id)
        ctx.finish(resource_id=store_id)
    log.info("store purged", extra={"store": store_id, "deleted": deleted})


JOBS: JobHandlers = {DELETE_KIND: purge_store}
