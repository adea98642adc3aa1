from __future__ import annotations

from fastapi import APIRouter, Request

from convmem.kit.auth import AccountSid
from convmem.kit.http import JSONResponse, ReadSession, base_url
from convmem.kit.inputs import BoundedRoute
from convmem.kit.schemas import ERRORS
from convmem.operations import service, status
from convmem.operations.schemas import OperationOut, operation_status

router = APIRouter(
    prefix="/v1/ControlPlane/Operations",
    route_class=BoundedRoute,
    responses=ERRORS,
    tags=["Operations"],
)


@router.get("/{operationId}", response_model=OperationOut)
def fetch_operation(
    operationId: str, request: Request, session: ReadSession, account_sid: AccountSid
) -> JSONResponse:
    op = service.get(session, account_sid=account_sid, operation_id=operationId)
    return JSONResponse(
        operation_status(op, base_url=base_url(request)),
        headers={
            "Operation-Id": op.id,
            "Retry-After": "0" if op.status in status.TERMINAL else "1",
        },
    )
