"""HTTP Basic auth: account SID + auth token, or API key SID + secret."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request

from convmem.kit.context import AppContext, get_context
from convmem.kit.errors import TooManyRequests, Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="convmem"'}


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized(headers=_CHALLENGE)
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Malformed Basic credentials", headers=_CHALLENGE) from exc
    if not sep or not username:
        raise Unauthorized("Malformed Basic credentials", headers=_CHALLENGE)
    return username, password


def _verify(ctx: AppContext, username: str, password: str) -> str | None:
    with ctx.db.transaction(write=False) as session:
        return ctx.verify_credentials(session, username, password)


async def authenticate(request: Request) -> str:
    """The SID of the account the request acts for; rate limited per credential.

    Async so that the common case (a cached credential) costs no thread hop.
    """
    ctx = get_context(request)
    username, password = _basic_credentials(request)
    account_sid = ctx.credentials.get(username, password)
    if account_sid is None:
        account_sid = await to_thread.run_sync(
            _verify, ctx, username, password, limiter=ctx.threads
        )
        if account_sid is None:
            raise Unauthorized("Invalid username or password", headers=_CHALLENGE)
        ctx.credentials.put(username, password, account_sid)
    if ctx.rate_limiter is not None:
        wait = ctx.rate_limiter.acquire(username)
        if wait is not None:
            raise TooManyRequests(headers={"Retry-After": str(wait)})
    request.state.account_sid = account_sid
    return account_sid


AccountSid = Annotated[str, Depends(authenticate)]
