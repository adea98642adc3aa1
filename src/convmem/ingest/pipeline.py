"""Rows to profile writes: map columns to traits, coerce, resolve, write.

`apply_batch` runs in the caller's transaction (a job step), so a batch's
writes commit together with the caller's checkpoint. Every row ends in exactly
one outcome, so the counts add up: rows = created + updated + merged +
unchanged + failed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from convmem.identity.normalize import InvalidIdentifier, normalize
from convmem.identity.resolution import IdConfig, Key
from convmem.ingest.coerce import (
    NULL_MARKER,
    TRIMMED,
    CellError,
    Coercer,
    coerce_typed,
    coercer,
)
from convmem.kit.errors import ValidationFailed
from convmem.profiles import engine
from convmem.profiles.rules import Record, StoreSchema, TraitWrite, check_value
from convmem.traits.rules import MAX_STRING_LENGTH, TraitSpec

# Codes of the report's lines: errors fail their row, warnings do not.
RAGGED_ROW = "RAGGED_ROW"
UNKNOWN_TRAIT = "UNKNOWN_TRAIT"
INVALID_VALUE = "INVALID_VALUE"
INVALID_IDENTIFIER = "INVALID_IDENTIFIER"
NO_IDENTIFIER = "NO_IDENTIFIER"
IDENTIFIER_CONFLICT = "IDENTIFIER_CONFLICT"
COERCED = "COERCED"
NORMALIZED = "NORMALIZED"


@dataclass(frozen=True)
class Field:
    """A source column mapped to a trait."""

    index: int
    column: str
    group: str
    name: str

    @property
    def trait(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass(frozen=True)
class ColumnMap:
    width: int  # columns every row must have
    fields: tuple[Field, ...]
    # Cells are CSV text (`\\N` deletes a trait); otherwise they are typed
    # values, where None writes nothing and REMOVE deletes the trait.
    text: bool = True


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


# A typed cell that deletes its trait (a pushed row's JSON null).
REMOVE: Any = _Remove()


class MissingColumns(ValueError):
    pass


def column_map(
    header: Sequence[str], mappings: Iterable[tuple[str, str, str]], *, text: bool = True
) -> ColumnMap:
    """Place each (column, group, trait) mapping on the header; MissingColumns
    names every mapped column the header lacks."""
    position = {name: n for n, name in enumerate(header)}
    fields, missing = [], []
    for column, group, name in mappings:
        if column not in position:
            missing.append(column)
        else:
            fields.append(Field(position[column], column, group, name))
    if missing:
        raise MissingColumns(
            f"the file has no column {', '.join(repr(c) for c in missing)} "
            f"(its header: {', '.join(repr(h) for h in header[:20])}"
            f"{', …' if len(header) > 20 else ''})"
        )
    return ColumnMap(len(header), tuple(fields), text)


@dataclass(frozen=True)
class Problem:
    """A line of the report: an error that failed its row, or a warning."""

    row: int
    column: str
    code: str
    message: str
    value: str
    warning: bool = False


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    unchanged: int = 0
    failed: int = 0
    warnings: int = 0

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of one row (kept only when asked: pushed rows answer it)."""

    row: int
    status: str  # created, updated, merged, unchanged or failed
    profile_id: str | None = None
    merged: tuple[str, ...] = ()
    error: Problem | None = None


@dataclass
class BatchResult:
    counts: Counts = field(default_factory=Counts)
    problems: list[Problem] = field(default_factory=list)
    outcomes: list[RowOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """How one mapped column becomes a trait write, worked out once per batch."""

    field: Field
    spec: TraitSpec | None
    key: str
    coerce: Coercer | None
    plain_string: bool  # a STRING trait without a validation rule: the fast path
    identifier: IdConfig | None


def _plans(columns: ColumnMap, schema: StoreSchema) -> list[_Plan]:
    plans = []
    for f in columns.fields:
        spec = schema.groups.get(f.group, {}).get(f.name)
        config = None
        if spec is not None and spec.id_type_promotion:
            config = schema.configs.get(spec.id_type_promotion)
        plans.append(
            _Plan(
                f,
                spec,
                f.trait,
                coercer(spec) if spec else None,
                spec is not None and spec.data_type == "STRING" and not spec.validation_rule,
                config,
            )
        )
    return plans


def to_record(
    number: int, cells: Sequence[Any], columns: ColumnMap, schema: StoreSchema
) -> tuple[Record | None, list[Problem]]:
    """The row as a record, or None and the error that fails it (first in the
    list); warnings of a written row come with it."""
    return _to_record(number, cells, columns, schema, _plans(columns, schema))


def _to_record(
    number: int,
    cells: Sequence[Any],
    columns: ColumnMap,
    schema: StoreSchema,
    plans: list[_Plan],
) -> tuple[Record | None, list[Problem]]:
    if len(cells) != columns.width:
        return None, [
            Problem(
                number,
                "",
                RAGGED_ROW,
                f"the row has {len(cells)} fields; the header has {columns.width}",
                "",
            )
        ]
    writes: list[TraitWrite] = []
    keys: list[tuple[str, str]] = []
    warnings: list[Problem] = []
    for plan in plans:
        f = plan.field
        text = cells[f.index]
        spec = plan.spec
        if spec is None:
            message = f"the store has no trait {f.trait} (deleted since the import was created?)"
            return None, [Problem(number, f.column, UNKNOWN_TRAIT, message, "")]
        if text is None:  # a typed source's null: nothing to write
            continue
        if text is REMOVE or (columns.text and text == NULL_MARKER):
            writes.append(TraitWrite(f.group, f.name, None, plan.key))
            continue
        value: Any
        if not isinstance(text, str):
            try:
                value, warning = coerce_typed(text, spec)
                check_value(f.trait, spec, value)
            except (CellError, ValidationFailed) as exc:
                message = str(exc.args[0]) if exc.args else "invalid value"
                return None, [Problem(number, f.column, INVALID_VALUE, message, _clip(str(text)))]
            if warning:
                warnings.append(Problem(number, f.column, COERCED, warning, _clip(str(text)), True))
        elif not text:
            if spec.data_type == "STRING":  # an empty cell of other types writes nothing
                writes.append(TraitWrite(f.group, f.name, "", plan.key))
            continue
        elif "\x00" in text:  # no database text type stores NUL
            message = "the cell contains a NUL character"
            return None, [Problem(number, f.column, INVALID_VALUE, message, "")]
        elif plan.plain_string:
            value = text.strip()
            if len(value) > MAX_STRING_LENGTH:
                message = f"{f.trait}: longer than {MAX_STRING_LENGTH} characters"
                return None, [Problem(number, f.column, INVALID_VALUE, message, _clip(text))]
            if value != text:
                warnings.append(Problem(number, f.column, COERCED, TRIMMED, _clip(text), True))
        else:
            assert plan.coerce is not None
            try:
                value, warning = plan.coerce(text)
                check_value(f.trait, spec, value)
            except (CellError, ValidationFailed) as exc:
                message = str(exc.args[0]) if exc.args else "invalid value"
                return None, [Problem(number, f.column, INVALID_VALUE, message, _clip(text))]
            if warning:
                warnings.append(Problem(number, f.column, COERCED, warning, _clip(text), True))
        writes.append(TraitWrite(f.group, f.name, value, plan.key))
        config = plan.identifier
        if config is None or value == "":
            continue
        try:
            normalized = normalize(str(value), config.normalization)
        except InvalidIdentifier as exc:
            return None, [Problem(number, f.column, INVALID_IDENTIFIER, str(exc), _clip(str(text)))]
        keys.append((config.id_type, normalized))
        if normalized != value:
            message = f"{config.id_type} identifier normalized to '{normalized}'"
            warnings.append(Problem(number, f.column, NORMALIZED, message, _clip(str(text)), True))
    if not keys:
        promoted = [plan.field.column for plan in plans if plan.identifier is not None]
        message = (
            f"no identifier: every row needs a value in {' or '.join(promoted)}"
            if promoted
            else "no identifier: no mapped column is promoted to an identifier"
        )
        return None, [Problem(number, "", NO_IDENTIFIER, message, "")]
    return Record(writes=writes, keys=keys), warnings


def apply_batch(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    columns: ColumnMap,
    rows: Sequence[tuple[int, Sequence[Any]]],
    *,
    keep_outcomes: bool = False,
) -> BatchResult:
    """Write a batch of (row number, cells) in the session's transaction;
    with `keep_outcomes`, `outcomes` says what became of each row, in order."""
    result = BatchResult()
    counts = result.counts
    records: list[Record] = []
    numbers: list[int] = []
    failed: dict[int, Problem] = {}
    plans = _plans(columns, schema)
    for number, cells in rows:
        counts.rows += 1
        record, problems = _to_record(number, cells, columns, schema, plans)
        if record is None:
            counts.failed += 1
            result.problems.append(problems[0])
            if keep_outcomes:
                failed[number] = problems[0]
            continue
        records.append(record)
        numbers.append(number)
        if problems:
            counts.warnings += len(problems)
            result.problems.extend(problems)
    written = write_records(session, store_id, schema, records, numbers, result, keep_outcomes)
    if keep_outcomes:
        for number, _ in rows:
            error = failed.get(number)
            result.outcomes.append(
                written[number] if error is None else RowOutcome(number, "failed", error=error)
            )
    return result


def write_records(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: list[Record],
    numbers: list[int],
    result: BatchResult,
    keep_outcomes: bool = False,
    holders: dict[Key, set[str]] | None = None,
) -> dict[int, RowOutcome]:
    """Write records through `engine.write` (`holders`: see there), counting
    each outcome into `result`; with `keep_outcomes`, what became of each row,
    by row number."""
    counts = result.counts
    written: dict[int, RowOutcome] = {}
    outcomes = engine.write(session, store_id, schema, records, holders=holders)
    for number, outcome in zip(numbers, outcomes, strict=True):
        if outcome.status == engine.REJECTED:
            counts.failed += 1
            reason = outcome.reason or "rejected"
            problem = Problem(number, "", IDENTIFIER_CONFLICT, reason, "")
            result.problems.append(problem)
            # Its warnings stay in the report; they are about values, not the outcome.
            if keep_outcomes:
                written[number] = RowOutcome(number, "failed", error=problem)
        else:
            setattr(counts, outcome.status, getattr(counts, outcome.status) + 1)
            if keep_outcomes:
                written[number] = RowOutcome(
                    number, outcome.status, outcome.profile_id, outcome.merged
                )
    return written


def _clip(text: str, limit: int = 256) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
