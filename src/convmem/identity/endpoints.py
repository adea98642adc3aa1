from __future__ import annotations

from fastapi import APIRouter, Request

from convmem.identity import service
from convmem.identity.schemas import (
    IdentityResolutionSettingsIn,
    IdentityResolutionSettingsOut,
    settings_json,
)
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
from convmem.kit.schemas import ERRORS, OperationAccepted
from convmem.operations.status import TERMINAL
from convmem.stores.endpoints import IfMatch, ReadStore, WriteStore

router = APIRouter(
    prefix="/v1/ControlPlane/Stores/{storeId}/IdentityResolutionSettings",
    route_class=BoundedRoute,
    responses=ERRORS,
    tags=["IdentityResolutionSettings"],
)


def _etag_id(store_id: str) -> str:
    return f"{store_id}/IdentityResolutionSettings"


@router.get("", response_model=IdentityResolutionSettingsOut)
def fetch_settings(store: ReadStore, session: ReadSession) -> JSONResponse:
    row = service.get(session, store_id=store.id)
    return JSONResponse(
        settings_json(row), headers={"ETag": make_etag(_etag_id(store.id), row.version)}
    )


@router.put("", status_code=202, response_model=OperationAccepted)
def update_settings(
    body: IdentityResolutionSettingsIn,
    store: WriteStore,
    request: Request,
    session: WriteSession,
    if_match: IfMatch = None,
) -> JSONResponse:
    op = service.replace(
        session,
        store=store,
        data=body,
        expected_version=expected_version(if_match, _etag_id(store.id)),
        hooks=get_context(request).hooks,
    )
    return accepted(
        request,
        operation_id=op.id,
        message="Identity Resolution Settings accepted for processing.",
        done=op.status in TERMINAL,
    )
