from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from convmem.kit.context import get_context
from convmem.kit.http import (
    JSONResponse,
    ReadSession,
    WriteSession,
    accepted,
    expected_version,
    make_etag,
)
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import ControlPlanePage
from convmem.kit.schemas import ERRORS, OperationAccepted
from convmem.operations.status import TERMINAL
from convmem.stores.endpoints import IfMatch, ReadStore, WriteStore
from convmem.traits import service
from convmem.traits.repository import spec_of
from convmem.traits.schemas import (
    TraitGroupCreate,
    TraitGroupPage,
    TraitGroupPatch,
    TraitGroupWithTraits,
    group_json,
)

router = APIRouter(
    prefix="/v1/ControlPlane/Stores/{storeId}/TraitGroups",
    route_class=BoundedRoute,
    responses=ERRORS,
    tags=["TraitGroup"],
)


def _etag_id(store_id: str, name: str) -> str:
    return f"{store_id}/TraitGroups/{name}"


@router.get("", response_model=TraitGroupPage)
def list_trait_groups(
    store: ReadStore,
    session: ReadSession,
    page: ControlPlanePage,
    include_traits: Annotated[bool, Query(alias="includeTraits")] = False,
) -> JSONResponse:
    result = service.list_groups(session, store_id=store.id, page=page)
    traits = (
        service.traits_by_group(session, store_id=store.id, groups=[g.name for g in result.items])
        if include_traits
        else {}
    )
    groups = [
        group_json(g.name, g.description, g.version, traits.get(g.name) if include_traits else None)
        for g in result.items
    ]
    return JSONResponse({"traitGroups": groups, "meta": result.meta("traitGroups")})


@router.post("", status_code=202, response_model=OperationAccepted)
def create_trait_group(
    body: TraitGroupCreate, store: WriteStore, request: Request, session: WriteSession
) -> JSONResponse:
    op = service.create(session, store=store, data=body)
    return accepted(
        request, operation_id=op.id, message="TraitGroup creation request accepted.", done=True
    )


@router.get("/{traitGroupName}", response_model=TraitGroupWithTraits)
def fetch_trait_group(
    traitGroupName: str,
    store: ReadStore,
    session: ReadSession,
    page: ControlPlanePage,
    include_traits: Annotated[bool, Query(alias="includeTraits")] = True,
) -> JSONResponse:
    group = service.get(session, store_id=store.id, name=traitGroupName)
    body: dict[str, object]
    if include_traits:
        traits = service.list_traits(session, store_id=store.id, group=group.name, page=page)
        specs = {row.name: spec_of(row) for row in traits.items}
        body = {
            "traitGroup": group_json(group.name, group.description, group.version, specs),
            "meta": traits.meta("traits"),
        }
    else:
        body = {"traitGroup": group_json(group.name, group.description, group.version, None)}
    return JSONResponse(
        body, headers={"ETag": make_etag(_etag_id(store.id, group.name), group.version)}
    )


@router.patch("/{traitGroupName}", status_code=202, response_model=OperationAccepted)
def patch_trait_group(
    traitGroupName: str,
    store: WriteStore,
    request: Request,
    session: WriteSession,
    if_match: IfMatch = None,
    body: TraitGroupPatch | None = None,
) -> JSONResponse:
    op = service.update(
        session,
        store=store,
        name=traitGroupName,
        data=body or TraitGroupPatch(),
        expected_version=expected_version(if_match, _etag_id(store.id, traitGroupName)),
        hooks=get_context(request).hooks,
    )
    return accepted(
        request,
        operation_id=op.id,
        message="TraitGroup update request accepted.",
        done=op.status in TERMINAL,
    )


@router.delete("/{traitGroupName}", status_code=202, response_model=OperationAccepted)
def delete_trait_group(
    traitGroupName: str, store: WriteStore, request: Request, session: WriteSession
) -> JSONResponse:
    op = service.delete(session, store=store, name=traitGroupName, hooks=get_context(request).hooks)
    return accepted(
        request,
        operation_id=op.id,
        message="TraitGroup deletion request accepted.",
        done=op.status in TERMINAL,
    )
