"""Data mapping routes: the API's five, convmem's syncs (runs of a dataset
mapping), and the rows pushed to an INGRESS mapping."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from convmem.ingest.report import render_csv
from convmem.kit.http import (
    JSONResponse,
    ReadSession,
    WriteSession,
    accepted,
    base_url,
    expected_version,
    make_etag,
)
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import ControlPlanePage
from convmem.kit.schemas import ERRORS, OperationAccepted
from convmem.mappings import repository, service, syncs
from convmem.mappings.schemas import (
    DataMappingCreate,
    DataMappingOut,
    DataMappingPage,
    DataMappingPatch,
    RowIn,
    RowsOut,
    SyncOut,
    SyncPage,
    SyncRequest,
    counts_json,
    mapping_json,
    sync_json,
)
from convmem.stores.endpoints import IfMatch, ReadStore, StoreBulk, WriteStore

MAPPINGS_PATH = "/v1/ControlPlane/Stores/{storeId}/DataMappings"
router = APIRouter(
    prefix=MAPPINGS_PATH, route_class=BoundedRoute, responses=ERRORS, tags=["DataMapping"]
)
rows_router = APIRouter(
    prefix="/v1/Stores/{storeId}/DataMappings",
    route_class=BoundedRoute,
    responses=ERRORS,
    tags=["DataMapping"],
)
TypeFilter = Annotated[str | None, Query(alias="type", max_length=40)]


def _etag_id(store_id: str, mapping_id: str) -> str:
    return f"{store_id}/DataMappings/{mapping_id}"


@router.get("", response_model=DataMappingPage)
def list_data_mappings(
    store: ReadStore, session: ReadSession, page: ControlPlanePage, type: TypeFilter = None
) -> JSONResponse:
    result = service.list_mappings(session, store_id=store.id, page=page, type_filter=type)
    return JSONResponse(
        {
            "dataMappings": [mapping_json(row) for row in result.items],
            "meta": result.meta("dataMappings"),
        }
    )


@router.post("", status_code=202, response_model=OperationAccepted)
def create_data_mapping(
    body: DataMappingCreate, store: WriteStore, request: Request, session: WriteSession
) -> JSONResponse:
    op = service.create(session, store=store, data=body)
    return accepted(
        request,
        operation_id=op.id,
        message="Data mapping creation request accepted for processing.",
        done=True,
    )


@router.get("/{dataMappingId}", response_model=DataMappingOut)
def fetch_data_mapping(dataMappingId: str, store: ReadStore, session: ReadSession) -> JSONResponse:
    row = service.get(session, store_id=store.id, mapping_id=dataMappingId)
    return JSONResponse(
        mapping_json(row), headers={"ETag": make_etag(_etag_id(store.id, row.id), row.version)}
    )


@router.patch("/{dataMappingId}", status_code=202, response_model=OperationAccepted)
def patch_data_mapping(
    dataMappingId: str,
    store: WriteStore,
    request: Request,
    session: WriteSession,
    if_match: IfMatch = None,
    body: DataMappingPatch | None = None,
) -> JSONResponse:
    op = service.update(
        session,
        store=store,
        mapping_id=dataMappingId,
        data=body or DataMappingPatch(),
        expected_version=expected_version(if_match, _etag_id(store.id, dataMappingId)),
    )
    return accepted(
        request,
        operation_id=op.id,
        message="Data mapping update request accepted for processing.",
        done=True,
    )


@router.delete("/{dataMappingId}", status_code=202, response_model=OperationAccepted)
def delete_data_mapping(
    dataMappingId: str, store: WriteStore, request: Request, session: WriteSession
) -> JSONResponse:
    op = service.delete(session, store=store, mapping_id=dataMappingId)
    return accepted(
        request,
        operation_id=op.id,
        message="Data mapping deletion request accepted for processing.",
        done=True,
    )


# -- syncs (convmem's extension) -----------------------------------------------------


def _report_url(request: Request, store_id: str, mapping_id: str, sync_id: str) -> str:
    return f"{base_url(request)}{syncs.sync_path(store_id, mapping_id, sync_id)}/Report"


@router.post("/{dataMappingId}/Syncs", status_code=202, response_model=OperationAccepted)
def start_sync(
    dataMappingId: str,
    store: WriteStore,
    request: Request,
    session: WriteSession,
    body: SyncRequest | None = None,
) -> JSONResponse:
    """Run the mapping's dataset into the store now (FULL, or INCREMENTAL after
    the watermark; the default is INCREMENTAL when the mapping has a cursor)."""
    sync, _ = syncs.start(
        session, store=store, mapping_id=dataMappingId, mode=(body or SyncRequest()).mode
    )
    response = accepted(
        request,
        operation_id=sync.operation_id,
        message="Data mapping sync accepted for processing.",
        done=False,
        extra={
            "syncId": sync.id,
            "syncUrl": base_url(request) + syncs.sync_path(store.id, dataMappingId, sync.id),
        },
    )
    return response


@router.get("/{dataMappingId}/Syncs", response_model=SyncPage)
def list_syncs(
    dataMappingId: str,
    request: Request,
    store: ReadStore,
    session: ReadSession,
    page: ControlPlanePage,
) -> JSONResponse:
    result = syncs.list_syncs(session, store=store, mapping_id=dataMappingId, page=page)
    items = []
    for row in result.items:
        _, status, message = syncs.get(
            session, store=store, mapping_id=dataMappingId, sync_id=row.id
        )
        url = _report_url(request, store.id, dataMappingId, row.id)
        items.append(sync_json(row, status, message, url))
    return JSONResponse({"syncs": items, "meta": result.meta("syncs")})


@router.get("/{dataMappingId}/Syncs/{syncId}", response_model=SyncOut)
def fetch_sync(
    dataMappingId: str, syncId: str, request: Request, store: ReadStore, session: ReadSession
) -> JSONResponse:
    row, status, message = syncs.get(session, store=store, mapping_id=dataMappingId, sync_id=syncId)
    url = _report_url(request, store.id, dataMappingId, row.id)
    return JSONResponse(sync_json(row, status, message, url))


@router.get(
    "/{dataMappingId}/Syncs/{syncId}/Report",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The sync's report (CSV)"}},
)
def sync_report(
    dataMappingId: str, syncId: str, store: ReadStore, session: ReadSession
) -> Response:
    """One line per failed row or warning: row, column, code, message, value, severity."""
    row, _, _ = syncs.get(session, store=store, mapping_id=dataMappingId, sync_id=syncId)
    return Response(
        render_csv(repository.report_lines(session, store.id, row.id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{syncId}-report.csv"'},
    )


# -- pushed rows (data plane) --------------------------------------------------------


@rows_router.post("/{dataMappingId}/Rows", response_model=RowsOut)
async def push_rows(dataMappingId: str, body: RowIn, run: StoreBulk) -> JSONResponse:
    """Map rows through an INGRESS mapping and resolve them like a bulk upsert;
    each row answers its own outcome (a bad row fails alone)."""

    def work(session: Session, store: Any) -> dict[str, Any]:
        pushed = syncs.push_rows(session, store, mapping_id=dataMappingId, rows=body.rows)
        results: list[dict[str, Any]] = []
        outcomes = {o.row: o for o in pushed.result.outcomes}
        counts = pushed.result.counts
        for index in range(len(body.rows)):
            problem = pushed.unknown.get(index)
            outcome = outcomes.get(index)
            item: dict[str, Any] = {"index": index}
            if problem is None and outcome is not None and outcome.error is None:
                item.update(status=outcome.status, profileId=outcome.profile_id)
                if outcome.merged:
                    item["mergedProfileIds"] = list(outcome.merged)
            else:
                error = problem or (outcome.error if outcome else None)
                assert error is not None
                item.update(
                    status="failed",
                    error={"code": error.code, "message": error.message, "column": error.column},
                )
            results.append(item)
        body_counts = counts_json(counts)
        body_counts["read"] += len(pushed.unknown)
        body_counts["failed"] += len(pushed.unknown)
        return {"results": results, "counts": body_counts}

    return JSONResponse(await run(work))
