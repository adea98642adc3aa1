"""Store rules: naming, limits, versioned updates, deletion."""

from __future__ import annotations

from sqlalchemy.orm import Session

from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import (
    MalformedStoreId,
    PreconditionFailed,
    StoreLimitExceeded,
    StoreNameTaken,
    StoreNotActive,
    StoreNotFound,
)
from convmem.kit.hooks import Hooks
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.kit.prepared import Guard
from convmem.operations import service as operations
from convmem.operations.models import Operation
from convmem.stores import repository
from convmem.stores.models import ACTIVE, Store, StoreRef
from convmem.stores.schemas import StoreCreate, StorePatch

DELETE_KIND = "store.delete"


def store_path(store_id: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}"


def check_id(store_id: str) -> None:
    ids.require(ids.STORE_ID, store_id, field="storeId", prefix=ids.STORE, error=MalformedStoreId)


def get(session: Session, *, account_sid: str, store_id: str) -> Store:
    check_id(store_id)
    store = repository.get_live(session, account_sid=account_sid, store_id=store_id)
    if store is None:
        raise StoreNotFound(f"Memory Store {store_id} not found")
    return store


def get_active(session: Session, *, account_sid: str, store_id: str) -> StoreRef:
    """The store a data-plane request acts on (a light row, not the ORM object)."""
    check_id(store_id)
    store = repository.get_live_ref(session, account_sid=account_sid, store_id=store_id)
    if store is None:
        raise StoreNotFound(f"Memory Store {store_id} not found")
    if store.status != ACTIVE:
        raise StoreNotActive(f"Memory Store {store_id} is {store.status}, not ACTIVE")
    return store


class StaleStore(Exception):
    """A request's assumed store is not as assumed any more: gone, not ACTIVE,
    or at another schema version. The request runs again, checked first."""


def assume(store: StoreRef) -> Guard:
    """A guard that `store` (as an earlier request saw it) is still so: the
    first statement of the work checks it, and raises StaleStore if not."""

    def verify(row: tuple[object, ...] | None) -> None:
        if row is None or row[0] != store.schema_version:
            raise StaleStore(store.id)

    params = {
        "guard_store_id": store.id,
        "guard_account_sid": store.account_sid,
        "guard_status": ACTIVE,
    }
    return Guard(repository.STILL_ACTIVE, params, verify, expect=(store.schema_version,))


def list_ids(session: Session, *, account_sid: str, page: PageRequest) -> Page[str]:
    query = repository.list_query(account_sid=account_sid)
    return paginate(
        session, query, Store.id, page, key_of=lambda store_id: store_id, scope="stores"
    )


def create(
    session: Session, *, account_sid: str, data: StoreCreate, max_stores: int, hooks: Hooks
) -> tuple[Store, Operation]:
    """Create a store; `hooks.store_created` adds what every store starts with
    (identity resolution settings, the Contact trait group)."""
    repository.lock_account(session, account_sid)
    if repository.count_live(session, account_sid=account_sid) >= max_stores:
        raise StoreLimitExceeded(f"An account can have at most {max_stores} Memory Stores")
    if repository.name_taken(session, account_sid=account_sid, display_name=data.displayName):
        raise StoreNameTaken(f"A Memory Store named '{data.displayName}' already exists")
    now = utcnow()
    store = Store(
        id=ids.new_id(ids.STORE),
        account_sid=account_sid,
        display_name=data.displayName,
        description=data.description,
        # Provisioning is done within this request, so the store is ACTIVE at once.
        status=ACTIVE,
        version=1,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, store)
    hooks.store_created(session, store.id)
    op = operations.record_completed(
        session,
        account_sid=account_sid,
        store_id=store.id,
        kind="store.create",
        resource_id=store.id,
        result_path=store_path(store.id),
    )
    return store, op


def update(
    session: Session, *, store: Store, data: StorePatch, expected_version: int | None
) -> Operation:
    values: dict[str, object] = {}
    if data.displayName is not None and data.displayName != store.display_name:
        if repository.name_taken(
            session,
            account_sid=store.account_sid,
            display_name=data.displayName,
            exclude_id=store.id,
        ):
            raise StoreNameTaken(f"A Memory Store named '{data.displayName}' already exists")
        values["display_name"] = data.displayName
    if data.description is not None:
        values["description"] = data.description
    if not repository.update_versioned(
        session,
        store_id=store.id,
        expected_version=expected_version,
        updated_at=utcnow(),
        **values,
    ):
        raise PreconditionFailed()
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="store.update",
        resource_id=store.id,
        result_path=store_path(store.id),
    )


def delete(session: Session, *, store: Store) -> Operation:
    """Hide the store at once; a background job purges its data."""
    repository.update_versioned(
        session, store_id=store.id, expected_version=None, deleted_at=utcnow()
    )
    return operations.enqueue(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind=DELETE_KIND,
        payload={"storeId": store.id},
    )
