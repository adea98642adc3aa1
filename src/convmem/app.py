"""The ASGI application: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from convmem import wiring
from convmem.datasets.endpoints import router as datasets_router
from convmem.identity.endpoints import router as identity_router
from convmem.imports.endpoints import router as imports_router
from convmem.imports.endpoints import uploads as uploads_router
from convmem.imports.storage import UPLOAD_PATH, storage_for
from convmem.kit.auth import authenticate
from convmem.kit.db import Database, is_retryable, is_unique_violation
from convmem.kit.errors import ConvmemError, ProfileMoved, WriteConflict, error_body
from convmem.kit.http import JSONResponse, base_url
from convmem.kit.inputs import BoundedRoute
from convmem.kit.middleware import ObservabilityMiddleware, RequestBodyMiddleware
from convmem.mappings.endpoints import router as mappings_router
from convmem.mappings.endpoints import rows_router as mapping_rows_router
from convmem.memories.embeddings import embedder_for
from convmem.memories.endpoints import router as memories_router
from convmem.operations.endpoints import router as operations_router
from convmem.operations.worker import WorkerPool
from convmem.profiles.endpoints import router as profiles_router
from convmem.profiles.schemas import ProfileData
from convmem.settings import Settings
from convmem.stores.endpoints import router as stores_router
from convmem.traits.endpoints import router as traits_router

log = logging.getLogger("convmem")
GC_YOUNG_THRESHOLD = 50_000

# Twilio's generic codes for HTTP errors raised outside our own error classes.
_HTTP_CODES = {
    400: 400,
    401: 20003,
    403: 20403,
    404: 20404,
    405: 20405,
    408: 408,
    409: 20409,
    413: 20413,
}


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the
    first route that matched the path, and FastAPI makes one route per method)."""
    table: list[tuple[Any, set[str]]] = request.app.state.route_methods
    methods = {m for regex, ms in table if regex.match(request.url.path) for m in ms}
    return ", ".join(sorted(methods))


def _route_methods(routers: Sequence[APIRouter]) -> list[tuple[Any, set[str]]]:
    table = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                table.append((compile_path(route.path)[0], set(route.methods or ())))
    return table


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One readable sentence naming each offending field and the rule it broke."""
    parts = []
    for error in list(errors)[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        where = {
            "body": "body",
            "query": "query parameter",
            "path": "path parameter",
            "header": "header",
        }.get(loc[0] if loc else "", "request")
        field = ".".join(loc[1:])
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            message = f"invalid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
            field = ""
        elif error.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where} {field}: {message}" if field else f"{where}: {message}")
    more = len(errors) - 5
    suffix = f" (and {more} more)" if more > 0 else ""
    return "Invalid request: " + "; ".join(parts) + suffix


def _error_response(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConvmemError)
    async def convmem_error(_: Request, exc: ConvmemError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(400, 520046, describe_validation_errors(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "The requested resource was not found"
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
            message = f"Method {request.method[:16]} not allowed; allowed: {headers['Allow']}"
        return _error_response(exc.status_code, code, message, headers)

    @app.exception_handler(ProfileMoved)
    async def moved(request: Request, exc: ProfileMoved) -> JSONResponse:
        # The same resource under the canonical id: 301 for reads, 308 for writes.
        old = request.path_params.get("profileId", "")
        path = request.url.path.replace(f"/Profiles/{old}", f"/Profiles/{exc.canonical_id}", 1)
        location = base_url(request) + path + (f"?{request.url.query}" if request.url.query else "")
        return JSONResponse(
            {"message": "This resource has moved.", "uri": location},
            status_code=301 if request.method in ("GET", "HEAD") else 308,
            headers={"Location": location, "Canonical-Profile-Id": exc.canonical_id},
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # A duplicate key is a concurrent write that slipped past our locks, and a
        # deadlock the database broke is worth retrying: both are the client's
        # 409. Any other database error is a bug, answered as one.
        if is_unique_violation(exc) or is_retryable(exc):
            log.warning("write conflict", extra={"error": str(exc.orig)[:200]})
            conflict = WriteConflict()
            return _error_response(conflict.status, conflict.code, conflict.message)
        return await unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error_response(500, 20500, "Internal Server Error")


def install_docs(app: FastAPI) -> None:
    """/docs with Swagger UI's assets served from a package: the server may run
    with no internet access, so nothing is fetched from a CDN."""
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="convmem API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


def create_app(
    settings: Settings, *, db: Database | None = None, run_workers: bool = False
) -> FastAPI:
    database = db or Database(settings.resolved_database_url, async_pool_size=settings.pool_size)
    ctx = wiring.context(settings, database)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The app's own objects (modules, routes, statements) live as long as the
        # process: take them out of the collector's sight, so the full
        # collections that hundreds of in-flight requests trigger stay cheap.
        gc.collect()
        gc.freeze()
        # Collect the young generation every 50,000 allocations, not 700:
        # with hundreds of requests in flight, each collection walks their
        # live frames, futures and buffers, and at the default pace that cost
        # took a fifth of PostgreSQL /healthz throughput at 512 connections
        # (docs/benchmarks.md). Cycles are rare here; memory barely moves.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        pool = WorkerPool(database, settings, ctx.jobs) if run_workers else None
        if pool:
            pool.start()
        try:
            yield
        finally:
            if pool:
                pool.shutdown()

    app = FastAPI(
        title="convmem",
        version="1.0",
        description="Conversation Memory server speaking Twilio's Memory API v1.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
        # convmem exports its own Prometheus metrics and logs; FastAPI's native
        # OpenTelemetry hooks would only add per-request work.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_docs(app)
    app.state.ctx = ctx
    app.state.import_storage = storage_for(settings)
    # The embedding model loads on the first text it is given, not here.
    app.state.embedder = embedder_for(settings)
    install_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=512)
    app.add_middleware(
        RequestBodyMiddleware,
        max_bytes=settings.max_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
        exempt_prefix=UPLOAD_PATH + "/",
    )
    app.add_middleware(ObservabilityMiddleware, access_log=settings.access_log)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        try:
            await database.ping()
        except Exception:
            log.exception("health check failed")
            return _error_response(503, 20503, "Database unavailable")
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # `convmem serve --processes N`: every process writes its metrics
            # to that directory, and any one of them answers for all.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The data plane first: routes are matched in order, and it is the hot path.
    routers = (
        profiles_router,
        imports_router,
        memories_router,
        mapping_rows_router,
        stores_router,
        identity_router,
        traits_router,
        mappings_router,
        datasets_router,
        operations_router,
        uploads_router,
    )
    if settings.bench_routes:  # first, so its routing costs what a profile route's does
        app.include_router(floor_router)
    for router in routers:
        app.include_router(router)
    app.state.route_methods = _route_methods(routers)
    return app


# What every data-plane request pays before its own work (authentication,
# input bounds, parsing and validating the body, rendering a small answer),
# measured by bench/profiles.py beside the real routes.
floor_router = APIRouter(route_class=BoundedRoute, include_in_schema=False)


@floor_router.post("/_bench/floor/{storeId}", status_code=202)
async def floor(storeId: str, body: ProfileData, request: Request) -> JSONResponse:
    await authenticate(request)
    return JSONResponse({"message": "ok", "id": storeId}, status_code=202)
