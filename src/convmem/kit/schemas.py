"""Base request model and small field types shared by the domains' schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _drop_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


class RequestModel(BaseModel):
    """A request body: unknown fields are errors, `null` means "not given".

    The official SDK serializes every optional field it knows, sending `null`
    for those the caller left out, so null must read as absent.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        return _drop_nulls(data)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# Enum values are accepted in any case and stored in the spec's spelling.
Lower = BeforeValidator(_lower)
Upper = BeforeValidator(_upper)


def timestamp(value: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2025-11-14T20:29:21.000Z."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Response shapes. Endpoints build their JSON directly (the hot path skips
# model serialization); these document it in convmem's own /openapi.json.


class ErrorBody(BaseModel):
    code: int = Field(examples=[520046])
    message: str
    more_info: str
    status: int = Field(examples=[400])


class Meta(BaseModel):
    key: str
    pageSize: int
    nextToken: str | None = None
    previousToken: str | None = None


class Accepted(BaseModel):
    message: str


class OperationAccepted(Accepted):
    """A control-plane write: follow statusUrl (also in Location and Operation-Id)."""

    statusUrl: str


# Errors every authenticated route may answer.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 405, 409, 412, 413, 429)
}
