"""What a data mapping may connect (plain functions over plain data).

Which source field types a trait's dataType accepts:

| trait    | lossless                                    | refused                  |
|----------|---------------------------------------------|--------------------------|
| STRING   | STRING, INTEGER, NUMBER, BOOLEAN, TIMESTAMP, | ARRAY, OTHER             |
|          | DATE (written as their text, ISO 8601 times) |                          |
| NUMBER   | INTEGER, NUMBER (a DECIMAL beyond a double's | STRING, BOOLEAN, times,  |
|          | precision is rounded, with a warning)        | ARRAY, OTHER             |
| BOOLEAN  | BOOLEAN                                      | everything else          |
| ARRAY    | ARRAY (of strings, numbers or booleans)      | everything else          |

A CSV dataset's fields are typed by inference, but its cells are read as text
and coerced as an import coerces them, so `007` mapped to a STRING stays `007`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from convmem.datasets import sources as fields
from convmem.kit.errors import TraitGroupNotFound, ValidationFailed
from convmem.profiles.rules import StoreSchema

ACCEPTS: dict[str, frozenset[str]] = {
    "STRING": frozenset(
        {
            fields.STRING,
            fields.INTEGER,
            fields.NUMBER,
            fields.BOOLEAN,
            fields.TIMESTAMP,
            fields.DATE,
        }
    ),
    "NUMBER": frozenset({fields.INTEGER, fields.NUMBER}),
    "BOOLEAN": frozenset({fields.BOOLEAN}),
    "ARRAY": frozenset({fields.ARRAY}),
}
# Cursor fields must sort: numbers, text and times do.
ORDERABLE = frozenset({fields.STRING, fields.INTEGER, fields.NUMBER, fields.TIMESTAMP, fields.DATE})


@dataclass(frozen=True)
class Item:
    field: str  # the source field (the item's expression)
    group: str
    trait: str


def check_items(
    items: Sequence[Item],
    schema: StoreSchema,
    *,
    source_fields: Mapping[str, str] | None,
    columns: Sequence[str] | None,
) -> None:
    """Each trait exists and is mapped once, each field exists in the source
    (with a type the trait accepts), and one mapped trait is an identifier.

    `source_fields` maps a dataset's field names to their types; `columns`
    are an INGRESS mapping's columns."""
    seen: set[tuple[str, str]] = set()
    promoted = False
    for n, item in enumerate(items):
        where = f"mappingTo.mappings[{n}]"
        definitions = schema.groups.get(item.group)
        if definitions is None:
            raise TraitGroupNotFound(
                f"{where}.traitGroup: the store has no trait group '{item.group}'"
            )
        spec = definitions.get(item.trait)
        if spec is None:
            raise ValidationFailed(
                f"{where}.traitName: trait group '{item.group}' has no trait '{item.trait}'"
            )
        if (item.group, item.trait) in seen:
            raise ValidationFailed(f"{where}: trait {item.group}.{item.trait} is mapped twice")
        seen.add((item.group, item.trait))
        promoted = promoted or spec.id_type_promotion in schema.configs
        if columns is not None and item.field not in columns:
            raise ValidationFailed(
                f"{where}.expression: '{item.field}' is not one of mappingFrom.columns"
            )
        if source_fields is not None:
            field_type = source_fields.get(item.field)
            if field_type is None:
                raise ValidationFailed(
                    f"{where}.expression: the dataset has no field '{item.field}'"
                )
            if field_type not in ACCEPTS[spec.data_type]:
                accepted = ", ".join(sorted(ACCEPTS[spec.data_type]))
                raise ValidationFailed(
                    f"{where}: field '{item.field}' is {field_type}, which a {spec.data_type} "
                    f"trait ({item.group}.{item.trait}) does not accept (it accepts {accepted})"
                )
    if not promoted:
        raise ValidationFailed(
            "mappingTo.mappings: at least one mapped trait must be promoted to an identifier "
            f"({', '.join(schema.promoted_traits()) or 'the store has none'}), so rows can "
            "be resolved to profiles"
        )


def sync_key(
    sync: Mapping[str, object] | None,
    *,
    source_fields: Mapping[str, str],
    primary_key: str | None,
    is_sql: bool,
) -> str | None:
    """The key field runs order and resume by (checked), or None for a file read
    in file order. Incremental runs and SQL sources need one."""
    sync = sync or {}
    cursor = sync.get("cursorField")
    key = sync.get("keyField") or primary_key
    for name in ("cursorField", "keyField"):
        value = sync.get(name)
        if value is not None and value not in source_fields:
            raise ValidationFailed(f"sync.{name}: the dataset has no field '{value}'")
    if cursor is not None and source_fields[str(cursor)] not in ORDERABLE:
        raise ValidationFailed(
            f"sync.cursorField: field '{cursor}' is {source_fields[str(cursor)]}; a cursor "
            "must be a number, text, date or timestamp"
        )
    if key is not None and source_fields.get(str(key)) not in ORDERABLE:
        raise ValidationFailed(f"sync.keyField: field '{key}' cannot order rows")
    if key is None and (cursor is not None or is_sql):
        needs = "an incremental sync" if cursor is not None else "a SQL dataset"
        raise ValidationFailed(
            f"sync.keyField: {needs} needs a key field that orders rows uniquely (the "
            "dataset has no one-column primary key)"
        )
    return str(key) if key is not None else None


def schema_drift(
    items: Sequence[Item], before: Mapping[str, str], now: Mapping[str, str]
) -> list[str]:
    """What changed in the source, for the fields the mapping reads."""
    problems = []
    for item in items:
        if item.field not in now:
            problems.append(f"field '{item.field}' is gone")
        elif before.get(item.field) != now[item.field]:
            problems.append(
                f"field '{item.field}' was {before.get(item.field)} and is now {now[item.field]}"
            )
    return problems
