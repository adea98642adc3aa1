"""Keyset pagination with opaque page tokens.

A token records the sort order, the direction (next or previous page) and the
key of the row it continues from, base64url-encoded. Pages are read with
`key > k` / `key < k` on an indexed, creation-ordered key, so deep pages cost
the same as the first.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from fastapi import Depends, Query
from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from convmem.kit.errors import ValidationFailed

Order = Literal["ASC", "DESC"]
# Keys are ids, sort keys or "<group>.<trait>": a token holding anything else is forged.
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PageRequest:
    page_size: int
    order: Order
    key: str | None = None
    backwards: bool = False
    scope: str | None = None  # the list the token was issued for


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None
    previous_token: str | None

    def meta(self, key: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"key": key, "pageSize": len(self.items)}
        if self.next_token:
            meta["nextToken"] = self.next_token
        if self.previous_token:
            meta["previousToken"] = self.previous_token
        return meta


def encode_token(order: Order, key: str, *, backwards: bool, scope: str = "") -> str:
    raw = orjson.dumps({"o": order, "k": key, "b": backwards, "s": scope})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[Order, str, bool, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        order, key, backwards, scope = data["o"], data["k"], data["b"], data.get("s", "")
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("Invalid pageToken: not a token issued by this server") from exc
    if (
        order not in ("ASC", "DESC")
        or not isinstance(key, str)
        or not _KEY.fullmatch(key)
        or not isinstance(backwards, bool)
        or not isinstance(scope, str)
    ):
        raise ValidationFailed("Invalid pageToken: not a token issued by this server")
    return order, key, backwards, scope


def page_request(page_size: int, page_token: str | None, order_by: str | None) -> PageRequest:
    order: Order
    if order_by is None:
        order = "DESC"
    elif order_by.upper() in ("ASC", "DESC"):
        order = "ASC" if order_by.upper() == "ASC" else "DESC"
    else:
        raise ValidationFailed(f"Invalid orderBy '{order_by}': must be ASC or DESC")
    if not page_token:
        return PageRequest(page_size, order)
    token_order, key, backwards, scope = decode_token(page_token)
    if order_by is not None and token_order != order:
        raise ValidationFailed(
            f"Invalid pageToken: it continues a listing with orderBy={token_order}, not {order}"
        )
    return PageRequest(page_size, token_order, key, backwards, scope)


PageToken = Annotated[str | None, Query(alias="pageToken", max_length=4096)]
OrderBy = Annotated[str | None, Query(alias="orderBy")]


async def control_plane_page(
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 50,
    page_token: PageToken = None,
    order_by: OrderBy = None,
) -> PageRequest:
    return page_request(page_size, page_token, order_by)


async def data_plane_page(
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=1000)] = 50,
    page_token: PageToken = None,
    order_by: OrderBy = None,
) -> PageRequest:
    return page_request(page_size, page_token, order_by)


# pageSize is at most 100 on control-plane lists and 1000 on data-plane lists.
ControlPlanePage = Annotated[PageRequest, Depends(control_plane_page)]
DataPlanePage = Annotated[PageRequest, Depends(data_plane_page)]


def paginate(
    session: Session,
    stmt: Select[Any],
    key: ColumnElement[str] | InstrumentedAttribute[str],
    request: PageRequest,
    *,
    key_of: Callable[[R], str],
    scope: str,
    scalars: bool = True,
) -> Page[R]:
    """Run `stmt` one page at a time, ordered by the unique, sortable `key`.

    `scope` names the list; a token issued for another list is refused."""
    ascending = _ascending(request, scope)
    if request.key is not None:
        stmt = stmt.where(key > request.key if ascending else key < request.key)
    stmt = stmt.order_by(key.asc() if ascending else key.desc()).limit(request.page_size + 1)
    rows: Sequence[Any] = session.scalars(stmt).all() if scalars else session.execute(stmt).all()
    return _page(rows, request, key_of, scope)


def paginate_items(
    items: Sequence[R], request: PageRequest, *, key_of: Callable[[R], str], scope: str
) -> Page[R]:
    """`paginate` over a list already in memory (a bounded one: a profile's traits)."""
    ascending = _ascending(request, scope)
    ordered = sorted(items, key=key_of, reverse=not ascending)
    if request.key is not None:
        after = request.key
        ordered = [i for i in ordered if (key_of(i) > after if ascending else key_of(i) < after)]
    return _page(ordered[: request.page_size + 1], request, key_of, scope)


def _ascending(request: PageRequest, scope: str) -> bool:
    if request.scope is not None and request.scope != scope:
        raise ValidationFailed("Invalid pageToken: it was issued for another list")
    return (request.order == "ASC") != request.backwards


def _page(
    rows: Sequence[Any], request: PageRequest, key_of: Callable[[R], str], scope: str
) -> Page[R]:
    """The page out of up to page_size + 1 rows in the direction of travel."""
    more = len(rows) > request.page_size
    items: list[R] = list(rows[: request.page_size])
    if request.backwards:
        items.reverse()
    if not items:
        return Page(items, None, None)
    first, last = key_of(items[0]), key_of(items[-1])
    if request.backwards:
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, request.key is not None
    return Page(
        items,
        encode_token(request.order, last, backwards=False, scope=scope) if has_next else None,
        encode_token(request.order, first, backwards=True, scope=scope) if has_previous else None,
    )
