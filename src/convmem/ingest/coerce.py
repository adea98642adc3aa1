"""Cell text to trait values (plain functions, no database).

A CSV cell is text; its trait's data type says what it becomes. Every change
made on the way (whitespace trimmed, `YES` read as true) is reported as a
warning so the user sees what was written; text that cannot become the type
is an error for the row."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from convmem.traits.rules import MAX_ARRAY_ITEMS, TraitSpec

# `\N` (PostgreSQL COPY's NULL) removes the trait from the profile.
NULL_MARKER = "\\N"
ARRAY_SEPARATOR = "|"

_INTEGER = re.compile(r"[+-]?\d{1,18}\Z")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class CellError(ValueError):
    """The cell's text cannot become a value of its trait's type."""


# A coercer returns (value, warning or None).
Coercer = Callable[[str], tuple[Any, str | None]]


TRIMMED = "leading or trailing whitespace trimmed"


def _string(text: str) -> tuple[Any, str | None]:
    value = text.strip()
    return value, (TRIMMED if value != text else None)


def _number(text: str) -> tuple[Any, str | None]:
    value = text.strip()
    if _INTEGER.match(value):
        return int(value), None
    try:
        number = float(value.replace(",", "") if _looks_grouped(value) else value)
    except ValueError:
        raise CellError(f"'{_clip(text)}' is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise CellError(f"'{_clip(text)}' is not a finite number")
    warning = "read as a number" if value != text or "," in value else None
    return (int(number) if number.is_integer() and "." not in value else number), warning


def _looks_grouped(value: str) -> bool:
    return "," in value and re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", value) is not None


def _boolean(text: str) -> tuple[Any, str | None]:
    folded = text.strip().lower()
    if folded in _TRUE:
        return True, None if text == "true" else f"'{_clip(text)}' read as true"
    if folded in _FALSE:
        return False, None if text == "false" else f"'{_clip(text)}' read as false"
    raise CellError(f"'{_clip(text)}' is not a boolean (true/false, yes/no, 1/0)")


def _array(text: str) -> tuple[Any, str | None]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise CellError(f"'{_clip(text)}' is not a JSON array") from None
        if not isinstance(value, list) or not all(
            isinstance(item, str | int | float | bool) for item in value
        ):
            raise CellError("a JSON array of strings, numbers or booleans is expected")
        return value, None
    items = [item.strip() for item in stripped.split(ARRAY_SEPARATOR)]
    if len(items) > MAX_ARRAY_ITEMS:
        raise CellError(f"more than {MAX_ARRAY_ITEMS} items")
    return items, f"read as an array of {len(items)} item(s) separated by '{ARRAY_SEPARATOR}'"


COERCERS: dict[str, Coercer] = {
    "STRING": _string,
    "NUMBER": _number,
    "BOOLEAN": _boolean,
    "ARRAY": _array,
}


def coercer(spec: TraitSpec) -> Coercer:
    return COERCERS[spec.data_type]


def coerce_typed(value: Any, spec: TraitSpec) -> tuple[Any, str | None]:
    """A typed source value (Parquet, SQL, pushed JSON) as a value of the
    trait's type. Text goes through the CSV coercers; a number or time written
    to a STRING trait becomes its text (lossless); anything else that does not
    fit is a CellError."""
    if isinstance(value, str):
        return COERCERS[spec.data_type](value)
    data_type = spec.data_type
    if data_type == "STRING":
        if isinstance(value, bool):
            return ("true" if value else "false"), None
        if isinstance(value, int | float | decimal.Decimal):
            return str(value), None
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat(), None
    elif data_type == "NUMBER":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float):
            if not math.isfinite(value):
                raise CellError(f"{value} is not a finite number")
            return value, None
        if isinstance(value, decimal.Decimal):
            if not value.is_finite():
                raise CellError(f"{value} is not a finite number")
            if value == value.to_integral_value():
                return int(value), None
            number = float(value)
            return number, (
                None if decimal.Decimal(repr(number)) == value else "rounded to a double"
            )
    elif data_type == "BOOLEAN":
        if isinstance(value, bool):
            return value, None
    elif isinstance(value, list | tuple):
        if len(value) > MAX_ARRAY_ITEMS:
            raise CellError(f"more than {MAX_ARRAY_ITEMS} items")
        if not all(isinstance(item, str | int | float | bool) for item in value):
            raise CellError("an array of strings, numbers or booleans is expected")
        return list(value), None
    raise CellError(f"a {_kind(value)} cannot be written to a {data_type} trait")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | decimal.Decimal):
        return "number"
    if isinstance(value, dt.datetime | dt.date):
        return "date/time"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
