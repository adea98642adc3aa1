"""All SQL of stores, including the purge of a deleted store's data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from convmem.accounts.models import Account
from convmem.kit.db import Base, affected, bump_version, is_postgres
from convmem.kit.prepared import Prepared
from convmem.stores.models import Store, StoreRef


def lock_account(session: Session, account_sid: str) -> None:
    """Serialize store creation per account (a no-op lock on SQLite, whose
    write transactions are already serialized by BEGIN IMMEDIATE)."""
    if is_postgres(session):
        session.execute(select(Account.sid).where(Account.sid == account_sid).with_for_update())


def get_live(session: Session, *, account_sid: str, store_id: str) -> Store | None:
    return session.scalar(
        select(Store).where(
            Store.id == store_id, Store.account_sid == account_sid, Store.deleted_at.is_(None)
        )
    )


# Hot-path statements are built once: building and caching a new statement
# object per call costs more than running the query on SQLite.
_LIVE_REF = Prepared(
    select(Store.id, Store.account_sid, Store.status, Store.schema_version).where(
        Store.id == bindparam("store_id"),
        Store.account_sid == bindparam("account_sid"),
        Store.deleted_at.is_(None),
    )
)


# A store still ACTIVE, with its schema version: what a request that assumed
# a store (kit.prepared.Guard) checks in its first statement.
STILL_ACTIVE = Prepared(
    select(Store.schema_version).where(
        Store.id == bindparam("guard_store_id"),
        Store.account_sid == bindparam("guard_account_sid"),
        Store.deleted_at.is_(None),
        Store.status == bindparam("guard_status"),
    )
)


def get_live_ref(session: Session, *, account_sid: str, store_id: str) -> StoreRef | None:
    row = _LIVE_REF.first(session, store_id=store_id, account_sid=account_sid)
    return StoreRef(*row) if row else None


def bump_schema(session: Session, store_id: str) -> None:
    session.execute(
        update(Store)
        .where(Store.id == store_id)
        .values(schema_version=Store.schema_version + 1)
        .execution_options(synchronize_session=False)
    )


def get_any(session: Session, store_id: str) -> Store | None:
    return session.get(Store, store_id)


def count_live(session: Session, *, account_sid: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Store)
            .where(Store.account_sid == account_sid, Store.deleted_at.is_(None))
        )
        or 0
    )


def name_taken(
    session: Session, *, account_sid: str, display_name: str, exclude_id: str | None = None
) -> bool:
    query = select(Store.id).where(
        Store.account_sid == account_sid,
        Store.display_name == display_name,
        Store.deleted_at.is_(None),
    )
    if exclude_id is not None:
        query = query.where(Store.id != exclude_id)
    return session.scalar(query.limit(1)) is not None


def list_query(*, account_sid: str) -> Select[Any]:
    return select(Store.id).where(Store.account_sid == account_sid, Store.deleted_at.is_(None))


def add(session: Session, store: Store) -> None:
    session.add(store)
    session.flush()


def update_versioned(
    session: Session, *, store_id: str, expected_version: int | None, **values: Any
) -> bool:
    """Apply `values` and bump the version; False when `expected_version` is stale."""
    return bump_version(
        session,
        Store,
        Store.id == store_id,
        Store.deleted_at.is_(None),
        expected_version=expected_version,
        **values,
    )


def store_scoped_tables() -> list[Table]:
    """Every table holding a store's data, children before parents.

    Found from the models, so tables added by later features are purged too.
    """
    return [
        table
        for table in reversed(Base.metadata.sorted_tables)
        if "store_id" in table.c
        and table.name != Store.__tablename__
        and table.info.get("purge_with_store", True)
    ]


def purge_batch(session: Session, table: Table, *, store_id: str, limit: int) -> int:
    """Delete up to `limit` rows of one store from `table`; returns how many."""
    key = list(table.primary_key.columns)
    batch = select(*key).where(table.c.store_id == store_id).limit(limit)
    condition = tuple_(*key).in_(batch) if len(key) > 1 else key[0].in_(batch)
    return affected(session, delete(table).where(condition))


def delete_row(session: Session, store_id: str) -> None:
    session.execute(delete(Store).where(Store.id == store_id))


def lock_store(session: Session, store_id: str) -> None:
    """Serialize control-plane changes within one store (counts, merges of
    trait maps). On SQLite, BEGIN IMMEDIATE already serializes writers."""
    if is_postgres(session):
        session.execute(select(Store.id).where(Store.id == store_id).with_for_update())
