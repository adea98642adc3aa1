"""HTTP helpers shared by every domain's endpoints."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse as _JSONResponse
from sqlalchemy.orm import Session

from convmem.kit.context import get_context
from convmem.kit.errors import PreconditionFailed

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class JSONResponse(_JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: committed on success, rolled back on error."""
    db = get_context(request).db
    with db.transaction(write=request.method not in _READ_METHODS) as session:
        yield session


# scope="function" closes the transaction before the response is sent, so a
# client that reads right after a write always sees it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def base_url(request: Request) -> str:
    public = get_context(request).settings.public_url
    return (public or str(request.base_url)).rstrip("/")


def _tag_id(resource_id: str) -> str:
    # A short digest keeps ETags well under If-Match's 100-character limit.
    return hashlib.sha256(resource_id.encode()).hexdigest()[:16]


def make_etag(resource_id: str, version: int) -> str:
    raw = orjson.dumps({"id": _tag_id(resource_id), "v": version})
    return '"' + base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + '"'


def expected_version(if_match: str | None, resource_id: str) -> int | None:
    """The version an If-Match header pins, None when absent or `*`.

    Raises 412 when the header names another resource or is not one of our ETags.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        try:
            data = orjson.loads(base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)))
        except (binascii.Error, ValueError):
            continue
        if isinstance(data, dict) and data.get("id") == _tag_id(resource_id):
            version = data.get("v")
            if isinstance(version, int):
                return version
    raise PreconditionFailed()


def accepted(
    request: Request,
    *,
    operation_id: str,
    message: str,
    done: bool,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The 202 answer of every control-plane write."""
    status_url = f"{base_url(request)}/v1/ControlPlane/Operations/{operation_id}"
    body: dict[str, Any] = {"message": message, "statusUrl": status_url}
    if extra:
        body.update(extra)
    return JSONResponse(
        body,
        status_code=202,
        headers={
            "Operation-Id": operation_id,
            "Location": status_url,
            "Retry-After": "0" if done else "1",
        },
    )
