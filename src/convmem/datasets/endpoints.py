"""`/v1/ControlPlane/Datasets` (convmem's extension): per account, like stores.

Source reads run on a worker thread, outside any database transaction; what
they found is then recorded in a short one."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from convmem.datasets import service
from convmem.datasets.schemas import (
    DatasetCreate,
    DatasetOut,
    DatasetPage,
    DatasetRefreshed,
    dataset_json,
)
from convmem.kit.auth import AccountSid
from convmem.kit.context import get_context
from convmem.kit.http import JSONResponse, Mode, Transaction
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import ControlPlanePage
from convmem.kit.schemas import ERRORS

router = APIRouter(
    prefix="/v1/ControlPlane/Datasets", route_class=BoundedRoute, responses=ERRORS, tags=["Dataset"]
)


@router.post("", status_code=201, response_model=DatasetOut)
async def create_dataset(
    body: DatasetCreate, request: Request, account_sid: AccountSid
) -> JSONResponse:
    """Register a source; its fields are read from it and stated in `fields`."""
    ctx = get_context(request)
    description = await to_thread.run_sync(
        service.describe, body.source.spec(), ctx.settings, limiter=ctx.threads
    )
    row = await Transaction(ctx, Mode.WRITE).run(
        lambda s: dataset_json(
            service.create(s, account_sid=account_sid, data=body, description=description)
        )
    )
    return JSONResponse(row, status_code=201)


@router.get("", response_model=DatasetPage)
async def list_datasets(
    request: Request, account_sid: AccountSid, page: ControlPlanePage
) -> JSONResponse:
    def work(session: Session) -> dict[str, object]:
        result = service.list_datasets(session, account_sid=account_sid, page=page)
        return {
            "datasets": [dataset_json(row) for row in result.items],
            "meta": result.meta("datasets"),
        }

    return JSONResponse(await Transaction(get_context(request), Mode.READ).run(work))


@router.get("/{datasetId}", response_model=DatasetOut)
async def fetch_dataset(datasetId: str, request: Request, account_sid: AccountSid) -> JSONResponse:
    body = await Transaction(get_context(request), Mode.READ).run(
        lambda s: dataset_json(service.get(s, account_sid=account_sid, dataset_id=datasetId))
    )
    return JSONResponse(body)


@router.post("/{datasetId}/Refresh", response_model=DatasetRefreshed)
async def refresh_dataset(
    datasetId: str, request: Request, account_sid: AccountSid
) -> JSONResponse:
    """Read the source's schema again and report the fields added, removed or retyped."""
    ctx = get_context(request)
    row = await Transaction(ctx, Mode.READ).run(
        lambda s: service.get(s, account_sid=account_sid, dataset_id=datasetId)
    )
    description = await to_thread.run_sync(
        service.describe, dict(row.source), ctx.settings, limiter=ctx.threads
    )

    def record(session: Session) -> dict[str, object]:
        fresh, changes = service.refresh(
            session,
            account_sid=account_sid,
            dataset_id=datasetId,
            version=row.version,
            description=description,
        )
        return {"dataset": dataset_json(fresh), "changes": changes.as_json()}

    return JSONResponse(await Transaction(ctx, Mode.WRITE).run(record))


@router.delete("/{datasetId}", status_code=204, response_class=Response)
async def delete_dataset(datasetId: str, request: Request, account_sid: AccountSid) -> Response:
    """Delete a dataset (409 while a data mapping reads it)."""
    ctx = get_context(request)
    await Transaction(ctx, Mode.WRITE).run(
        lambda s: service.delete(s, account_sid=account_sid, dataset_id=datasetId, hooks=ctx.hooks)
    )
    return Response(status_code=204)
