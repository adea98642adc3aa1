"""The boundary every client value crosses: JSON bodies, path and query values.

Checked here, once, the same way on both backends, before any rule or SQL sees
a value:

- JSON is strict: `NaN`/`Infinity` literals and invalid UTF-8 are refused.
- Numbers must fit the documented range: integers are signed 64-bit, other
  numbers finite doubles (so every backend and the JSON encoder keep them as
  sent).
- Text must be storable everywhere: no NUL characters and no lone surrogates
  (PostgreSQL stores neither, and a lone surrogate is not UTF-8 at all).
- Nesting is bounded, so a hostile body cannot exhaust the stack.

Errors are 400 with code 520046 and name the offending field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from anyio import to_thread
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from convmem.kit.errors import UnsupportedMediaType, ValidationFailed

# Bodies larger than this are parsed and checked on a worker thread: a 10 MiB
# JSON document takes tens of milliseconds, which must not stall the event loop.
PARSE_OFF_LOOP_BYTES = 256 * 1024
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 32
NUMBER_RANGE = "integers from -2^63 to 2^63-1 or finite decimal numbers"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it contains a lone surrogate)"
    return None


def check_text(field: str, value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise ValidationFailed(f"{field}: {problem}")


def number_problem(value: int | float) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
    elif math.isfinite(value):
        return None
    return f"number out of range (allowed: {NUMBER_RANGE})"


def check_json(value: Any, where: str = "body") -> None:
    """Walk a parsed JSON document; raise naming the first value out of bounds."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
        elif isinstance(node, int | float):
            problem = number_problem(node)
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise ValidationFailed(f"{path}: nested deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    key_problem = text_problem(key)
                    if key_problem is not None:
                        raise ValidationFailed(f"{path}: a field name {key_problem}")
                    stack.append((item, f"{path}.{key}", depth + 1))
            else:
                stack.extend((item, f"{path}[{n}]", depth + 1) for n, item in enumerate(node))
            continue
        else:
            problem = None
        if problem is not None:
            raise ValidationFailed(f"{path}: {problem}")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: what `json` accepts minus NaN/Infinity, checked by check_json."""
    try:
        text = body.decode("utf-8-sig")
        document = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "the body is not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ValidationFailed(f"Invalid request: body: invalid JSON ({reason[:200]})") from None
    check_json(document)
    return document


async def _parse(body: bytes) -> Any:
    if len(body) > PARSE_OFF_LOOP_BYTES:
        return await to_thread.run_sync(parse_json, body)
    return parse_json(body)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


async def check_request(request: Request) -> None:
    """Path and query values, then the JSON body (parsed once, here)."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(f"path parameter {name}", value)
    for name, value in request.query_params.multi_items():
        check_text(f"query parameter {name}", value)
    body = await request.body()
    if not body:
        return
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        try:
            document = await _parse(body)
        except ValidationFailed:
            raise UnsupportedMediaType(
                f"Content-Type '{content_type[:80]}' is not supported: send a JSON body "
                "with Content-Type: application/json"
            ) from None
        # A JSON body sent as another type (plain `curl -d`): read it as JSON.
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
        request.scope["headers"] = [*headers, (b"content-type", b"application/json")]
        request.__dict__.pop("_headers", None)
    else:
        document = await _parse(body)
    # Starlette's Request.json() returns this instead of parsing again.
    request._json = document


class BoundedRoute(APIRoute):
    """An APIRoute whose requests pass `check_request` before FastAPI reads them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            await check_request(request)
            return await handler(request)

        return bounded
