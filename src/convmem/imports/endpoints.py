"""Import routes: the API's three (create, list, status), convmem's report
download, and the upload URL the server receives files at (embedded storage)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path
from typing import Annotated, Any

from anyio import from_thread, to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from convmem.imports import repository as repo
from convmem.imports import service
from convmem.imports.schemas import ImportCreate, ImportCreated, ImportIds, ImportOut, import_json
from convmem.imports.storage import UPLOAD_PATH, LocalStorage, Storage, Upload
from convmem.ingest.report import render_csv
from convmem.kit.context import get_context
from convmem.kit.db import utcnow
from convmem.kit.errors import (
    BadRequest,
    Conflict,
    ImportNotFound,
    RequestTimeout,
    UnsupportedMediaType,
)
from convmem.kit.http import JSONResponse, Mode, Transaction, base_url
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import DataPlanePage
from convmem.kit.schemas import ERRORS
from convmem.stores.endpoints import StoreRead, StoreWrite

IMPORTS_PATH = "/v1/Stores/{storeId}/Profiles/Imports"
router = APIRouter(
    prefix=IMPORTS_PATH, route_class=BoundedRoute, tags=["Profile"], responses=ERRORS
)
# A client that stops sending for this long loses its upload (it may retry).
UPLOAD_IDLE_SECONDS = 60.0


def import_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.import_storage
    return storage


def report_url(request: Request, store_id: str, import_id: str) -> str:
    return f"{base_url(request)}/v1/Stores/{store_id}/Profiles/Imports/{import_id}/Report"


@router.post("", status_code=201, response_model=ImportCreated)
async def create_import(
    body: ImportCreate,
    request: Request,
    run: StoreWrite,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> JSONResponse:
    ctx = get_context(request)
    storage = import_storage(request)
    row = await run(
        lambda s, store: service.create(
            s,
            store=store,
            data=body,
            dry_run=dry_run,
            url_seconds=ctx.settings.upload_url_seconds,
            server_receives=storage.receives_uploads,
        )
    )
    url = storage.upload_url(service.upload_of(row), base_url(request))
    return JSONResponse({"importId": row.id, "url": url}, status_code=201)


@router.get("", response_model=ImportIds)
async def list_imports(run: StoreRead, page: DataPlanePage) -> JSONResponse:
    result = await run(lambda s, store: service.list_ids(s, store=store, page=page))
    return JSONResponse({"imports": result.items, "meta": result.meta("imports")})


@router.get("/{importId}", response_model=ImportOut)
async def fetch_import(importId: str, request: Request, run: StoreRead) -> JSONResponse:
    row, status, message = await run(
        lambda s, store: service.get(s, store=store, import_id=importId)
    )
    url = report_url(request, row.store_id, row.id)
    return JSONResponse(import_json(row, status, message, url))


@router.get(
    "/{importId}/Report",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The import's report (CSV)"}},
)
async def import_report(importId: str, run: StoreRead) -> Response:
    """One line per failed row or warning: row, column, code, message, value, severity."""

    def render(session: Any, store: Any) -> bytes:
        row, _, _ = service.get(session, store=store, import_id=importId)
        return render_csv(repo.report_lines(session, row.store_id, row.id))

    body = await run(render)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{importId}-report.csv"'},
    )


# -- the upload URL (embedded storage) ---------------------------------------------

uploads = APIRouter(prefix=UPLOAD_PATH, include_in_schema=False)


@uploads.put("/{storeId}/{importId}")
async def receive_upload(
    storeId: str, importId: str, request: Request, expires: str = "", signature: str = ""
) -> JSONResponse:
    """Receive an import's file, streamed to disk. The signed URL is the
    credential; the body must be exactly the declared fileSize."""
    ctx = get_context(request)
    storage = import_storage(request)
    if not isinstance(storage, LocalStorage):
        raise ImportNotFound("Uploads go to the import bucket, not to this server")
    target = await Transaction(ctx, Mode.READ).run(
        lambda s: service.upload_target(s, storeId, importId)
    )
    upload = target.upload
    storage.verify(upload, expires[:16], signature[:128], utcnow())
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType("Upload the file as is, without Content-Encoding")
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip() != str(upload.file_size):
        raise _size_mismatch(declared.strip(), upload.file_size)
    path = storage.path(upload)
    await to_thread.run_sync(_receive_into, path, upload, request)
    await Transaction(ctx, Mode.WRITE).run(lambda s: service.uploaded(s, target.row))
    return JSONResponse({"importId": upload.import_id, "size": upload.file_size})


def _size_mismatch(received: object, declared: int) -> BadRequest:
    return BadRequest(
        f"The upload has {received} bytes but the import declared fileSize {declared}; "
        "PUT the whole file again (the import still waits for it)"
    )


def _receive_into(path: Path, upload: Upload, request: Request) -> None:
    """Write the body to `<file>.part` under an exclusive lock, then rename it
    into place. Runs in a thread; the body is pulled from the event loop."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("Another upload of this import is in progress") from None
        if path.exists():
            raise Conflict(f"Import {upload.import_id} already has its file; create a new import")
        os.ftruncate(fd, 0)
        stream = request.stream().__aiter__()
        received = 0
        complete = False
        try:
            while True:
                try:
                    chunk = from_thread.run(_next_chunk, stream)
                except StopAsyncIteration:
                    break
                received += len(chunk)
                if received > upload.file_size:
                    raise _size_mismatch(f"more than {upload.file_size}", upload.file_size)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if received != upload.file_size:
                raise _size_mismatch(received, upload.file_size)
            os.fsync(fd)
            os.replace(part, path)
            complete = True
        finally:
            if not complete:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
    finally:
        os.close(fd)


async def _next_chunk(stream: Any) -> bytes:
    try:
        async with asyncio.timeout(UPLOAD_IDLE_SECONDS):
            chunk: bytes = await stream.__anext__()
            return chunk
    except TimeoutError:
        raise RequestTimeout(
            f"No upload data for {UPLOAD_IDLE_SECONDS:g} seconds; PUT the file again"
        ) from None
    except ClientDisconnect:
        raise RequestTimeout("The client went away during the upload") from None
