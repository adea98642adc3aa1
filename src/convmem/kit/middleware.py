"""ASGI middleware: request body decompression and limits, metrics, access log."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convmem.kit.errors import (
    BadRequest,
    ConvmemError,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)

log = logging.getLogger("convmem.access")

REQUESTS = Counter(
    "convmem_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "convmem_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


async def _send_error(send: Send, error: ConvmemError) -> None:
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestBodyMiddleware:
    """Decompresses gzip/deflate request bodies, bounding the decompressed size."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        read_timeout: float = 10.0,
        exempt_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        # File uploads: streamed by their route, which bounds them itself.
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.exempt_prefix and scope["path"].startswith(self.exempt_prefix)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        declared = headers.get(b"content-length")
        if encoding in ("", "identity"):
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await _send_error(send, self._too_large())
                return
            await self.app(scope, self._limited(self._timed(receive)), send)
            return
        if encoding not in ("gzip", "deflate"):
            await _send_error(
                send,
                UnsupportedMediaType(
                    f"Content-Encoding '{encoding}' is not supported; use gzip or deflate"
                ),
            )
            return
        try:
            body = await self._decompress(self._timed(receive), encoding)
        except ConvmemError as error:
            await _send_error(send, error)
            return
        except HTTPException as exc:  # the body-read timeout
            await _send_error(send, RequestTimeout(str(exc.detail)))
            return
        new_headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        new_headers.append((b"content-length", str(len(body)).encode()))
        scope = dict(scope, headers=new_headers)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body exceeds {self.max_bytes} bytes")

    def _timed(self, receive: Receive) -> Receive:
        """The whole body must arrive within `read_timeout` seconds: a client that
        declares more than it sends cannot hold a connection and its task."""
        deadline: float | None = None
        done = False

        async def wrapped() -> Message:
            nonlocal deadline, done
            if done:  # after the body, receive() waits for a disconnect: no limit
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.read_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"Request body not received within {self.read_timeout:g} seconds"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return wrapped

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body reading as they are.
                    raise HTTPException(413, f"Request body exceeds {self.max_bytes} bytes")
            return message

        return wrapped

    async def _decompress(self, receive: Receive, encoding: str) -> bytes:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        chunks: list[bytes] = []
        size = 0
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                more = message.get("more_body", False)
                data = message.get("body", b"")
                while data:
                    out = inflater.decompress(data, self.max_bytes + 1 - size)
                    size += len(out)
                    chunks.append(out)
                    if size > self.max_bytes:
                        raise self._too_large()
                    data = inflater.unconsumed_tail
            tail = inflater.flush()
        except zlib.error as exc:
            raise BadRequest(f"Request body is not valid {encoding} data") from exc
        size += len(tail)
        if size > self.max_bytes:
            raise self._too_large()
        chunks.append(tail)
        return b"".join(chunks)


class ObservabilityMiddleware:
    """Prometheus metrics and one access-log line per request."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if self.access_log and route not in ("/healthz", "/metrics"):
                state: dict[str, Any] = scope.get("state") or {}
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                        "account": state.get("account_sid"),
                    },
                )
