from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.orm import Session

from convmem.kit.auth import AccountSid, authenticate
from convmem.kit.context import get_context
from convmem.kit.http import (
    JSONResponse,
    Mode,
    ReadSession,
    Transaction,
    WriteSession,
    accepted,
    expected_version,
    make_etag,
)
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import ControlPlanePage
from convmem.kit.prepared import GUARD
from convmem.kit.schemas import ERRORS, OperationAccepted
from convmem.stores import service
from convmem.stores.models import Store, StoreRef
from convmem.stores.schemas import StoreCreate, StoreIds, StoreOut, StorePatch, store_json

router = APIRouter(
    prefix="/v1/ControlPlane/Stores", route_class=BoundedRoute, tags=["Store"], responses=ERRORS
)
T = TypeVar("T")


def store_to_read(storeId: str, session: ReadSession, account_sid: AccountSid) -> Store:
    return service.get(session, account_sid=account_sid, store_id=storeId)


def store_to_change(storeId: str, session: WriteSession, account_sid: AccountSid) -> Store:
    return service.get(session, account_sid=account_sid, store_id=storeId)


# The request's store, loaded in the request's read or write transaction.
ReadStore = Annotated[Store, Depends(store_to_read)]
WriteStore = Annotated[Store, Depends(store_to_change)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=100)]


@router.get("", response_model=StoreIds)
def list_stores(
    session: ReadSession, account_sid: AccountSid, page: ControlPlanePage
) -> JSONResponse:
    result = service.list_ids(session, account_sid=account_sid, page=page)
    return JSONResponse({"stores": result.items, "meta": result.meta("stores")})


@router.post("", status_code=202, response_model=OperationAccepted)
def create_store(
    body: StoreCreate, request: Request, session: WriteSession, account_sid: AccountSid
) -> JSONResponse:
    ctx = get_context(request)
    _, op = service.create(
        session,
        account_sid=account_sid,
        data=body,
        max_stores=ctx.settings.max_stores_per_account,
        hooks=ctx.hooks,
    )
    return accepted(
        request,
        operation_id=op.id,
        message="Memory Store creation accepted for processing.",
        done=True,
    )


@router.get("/{storeId}", response_model=StoreOut)
def fetch_store(store: ReadStore) -> JSONResponse:
    return JSONResponse(store_json(store), headers={"ETag": make_etag(store.id, store.version)})


@router.patch("/{storeId}", status_code=202, response_model=OperationAccepted)
def patch_store(
    store: WriteStore,
    request: Request,
    session: WriteSession,
    if_match: IfMatch = None,
    body: StorePatch | None = None,
) -> JSONResponse:
    op = service.update(
        session,
        store=store,
        data=body or StorePatch(),
        expected_version=expected_version(if_match, store.id),
    )
    return accepted(
        request,
        operation_id=op.id,
        message="Memory Store update request accepted for processing.",
        done=True,
    )


@router.delete("/{storeId}", status_code=202, response_model=OperationAccepted)
def delete_store(store: WriteStore, request: Request, session: WriteSession) -> JSONResponse:
    op = service.delete(session, store=store)
    return accepted(
        request,
        operation_id=op.id,
        message="Memory Store deletion request accepted for processing.",
        done=False,
    )


class StoreWork:
    """Runs data-plane work against the request's ACTIVE store in one
    transaction (see kit.http.Transaction for where it runs).

    A store this process saw ACTIVE before is assumed to be so still, and
    that is checked in the work's first query instead of a query of its own
    (service.assume): one round trip less per request. When the check fails,
    or the work fails before any query checked it, the work runs again the
    plain way, store first, so errors come out exactly as they would."""

    def __init__(self, tx: Transaction, account_sid: str, store_id: str) -> None:
        self.tx, self.account_sid, self.store_id = tx, account_sid, store_id

    async def __call__(self, work: Callable[[Session, StoreRef], T]) -> T:
        known = self.tx.ctx.active_stores
        key = (self.account_sid, self.store_id)
        assumed = known.get(key)
        if assumed is not None:
            try:
                return await self.tx.run(self._assuming(assumed, work))
            except service.StaleStore:
                known.pop(key, None)
        return await self.tx.run(self._checked(work))

    def _checked(self, work: Callable[[Session, StoreRef], T]) -> Callable[[Session], T]:
        ctx = self.tx.ctx

        def unit(session: Session) -> T:
            session.info["schemas"] = ctx.schemas
            store = service.get_active(
                session, account_sid=self.account_sid, store_id=self.store_id
            )
            ctx.remember_store((self.account_sid, self.store_id), store)
            return work(session, store)

        return unit

    def _assuming(
        self, store: StoreRef, work: Callable[[Session, StoreRef], T]
    ) -> Callable[[Session], T]:
        schemas = self.tx.ctx.schemas

        def unit(session: Session) -> T:
            session.info["schemas"] = schemas
            guard = service.assume(store)
            session.info[GUARD] = guard
            try:
                result = work(session, store)
            except Exception:
                # Failed with the assumption still unchecked (a StaleStore from
                # the check itself comes after the guard was taken out): the
                # plain run decides what this request answers.
                if session.info.pop(GUARD, None) is not None:
                    raise service.StaleStore(store.id) from None
                raise
            guard.settle(session)
            return result

        return unit


def _store_work(mode: Mode) -> Callable[[str, Request], Awaitable[StoreWork]]:
    async def dependency(storeId: str, request: Request) -> StoreWork:
        # One dependency instead of three nested ones: FastAPI's dependency
        # resolution is a measurable share of a hot request.
        account_sid = await authenticate(request)
        service.check_id(storeId)
        return StoreWork(Transaction(get_context(request), mode), account_sid, storeId)

    return dependency


# Data-plane routes declare what their work does, and that decides where it
# runs: `await run(lambda session, store: ...)` (409, 520042 unless ACTIVE).
StoreRead = Annotated[StoreWork, Depends(_store_work(Mode.READ))]
StoreWrite = Annotated[StoreWork, Depends(_store_work(Mode.WRITE))]
StoreBulk = Annotated[StoreWork, Depends(_store_work(Mode.BULK))]
