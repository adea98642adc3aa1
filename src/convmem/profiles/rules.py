"""Trait values against trait definitions, and which values become
identifiers (plain functions, no database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convmem.identity.normalize import normalize_field
from convmem.identity.resolution import IdConfig, Key
from convmem.kit.errors import ValidationFailed
from convmem.kit.inputs import number_problem
from convmem.traits.rules import (
    MAX_ARRAY_ITEMS,
    MAX_STRING_LENGTH,
    TraitSpec,
    UnsafePattern,
    compile_pattern,
)

MAX_GROUPS_PER_WRITE = 50
MAX_TRAITS_PER_GROUP_WRITE = 99


@dataclass(frozen=True)
class StoreSchema:
    """What a store accepts: trait definitions and identity settings."""

    groups: dict[str, dict[str, TraitSpec]]
    configs: dict[str, IdConfig]
    rules: list[str]
    # "<group>.<trait>" -> the definition's sort_key, which its values carry.
    def_keys: dict[str, str] = field(default_factory=dict)

    def is_live(self, trait_key: str, def_key: str | None) -> bool:
        """Whether a stored value belongs to a trait definition that exists now."""
        return def_key is not None and self.def_keys.get(trait_key) == def_key

    def has_fuzzy(self) -> bool:
        """Whether an idType matches similar values (holders are then found by
        a search of the blocking indexes, not only by the exact value)."""
        return any(config.fuzzy for config in self.configs.values())

    def promoted_traits(self) -> list[str]:
        """ "<group>.<trait>" of each trait promoted to a configured idType, sorted
        (identity settings cannot drop an idType a trait promotes to)."""
        return sorted(
            f"{g}.{t}"
            for g, defs in self.groups.items()
            for t, spec in defs.items()
            if spec.id_type_promotion in self.configs
        )

    def promotion(self, group: str, trait: str) -> str | None:
        spec = self.groups.get(group, {}).get(trait)
        return spec.id_type_promotion if spec else None


class TraitWrite:
    """One trait value to write (None deletes the trait). A plain slotted class:
    imports make millions of them."""

    __slots__ = ("group", "key", "name", "value")

    def __init__(self, group: str, name: str, value: Any, key: str | None = None) -> None:
        self.group = group
        self.name = name
        self.value = value
        self.key = key or f"{group}.{name}"  # "<group>.<trait>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraitWrite) and (self.group, self.name, self.value) == (
            other.group,
            other.name,
            other.value,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TraitWrite({self.group!r}, {self.name!r}, {self.value!r})"


@dataclass
class Record:
    """One profile's worth of incoming data."""

    writes: list[TraitWrite] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    anchor: str | None = None


def _check_scalar(field: str, value: Any) -> None:
    """Bounds every value of its kind has, whatever its trait's rule says."""
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValidationFailed(f"{field}: longer than {MAX_STRING_LENGTH} characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        problem = number_problem(value)
        if problem is not None:
            raise ValidationFailed(f"{field}: {problem}")


def check_value(field: str, spec: TraitSpec, value: Any) -> None:
    data_type = spec.data_type
    if data_type == "STRING":
        ok = isinstance(value, str)
    elif data_type == "NUMBER":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif data_type == "BOOLEAN":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, list) and all(
            isinstance(item, str | int | float | bool) for item in value
        )
    if not ok:
        expected = {"ARRAY": "an array of strings, numbers or booleans"}.get(
            data_type, f"a {data_type.lower()}"
        )
        raise ValidationFailed(f"{field}: must be {expected}, got {_describe(value)}")
    if isinstance(value, list):
        if len(value) > MAX_ARRAY_ITEMS:
            raise ValidationFailed(f"{field}: more than {MAX_ARRAY_ITEMS} items")
        for n, item in enumerate(value):
            _check_scalar(f"{field}[{n}]", item)
    else:
        _check_scalar(field, value)
    rule = spec.validation_rule
    if not rule:
        return
    if data_type == "STRING":
        if "minLength" in rule and len(value) < rule["minLength"]:
            raise ValidationFailed(f"{field}: shorter than minLength {rule['minLength']}")
        if "maxLength" in rule and len(value) > rule["maxLength"]:
            raise ValidationFailed(f"{field}: longer than maxLength {rule['maxLength']}")
        if "pattern" in rule:
            try:
                matched = compile_pattern(rule["pattern"]).search(value) is not None
            except UnsafePattern:
                # Only a definition stored before patterns were checked with RE2.
                raise ValidationFailed(
                    f"{field}: the trait's pattern cannot be evaluated safely; "
                    "redefine the trait with an RE2 pattern"
                ) from None
            if not matched:
                raise ValidationFailed(f"{field}: does not match pattern {rule['pattern']}")
    elif data_type == "NUMBER":
        if "min" in rule and value < rule["min"]:
            raise ValidationFailed(f"{field}: less than min {rule['min']}")
        if "max" in rule and value > rule["max"]:
            raise ValidationFailed(f"{field}: greater than max {rule['max']}")
    elif data_type == "ARRAY":
        if "minItems" in rule and len(value) < rule["minItems"]:
            raise ValidationFailed(f"{field}: fewer than minItems {rule['minItems']}")
        if "maxItems" in rule and len(value) > rule["maxItems"]:
            raise ValidationFailed(f"{field}: more than maxItems {rule['maxItems']}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array containing a non-scalar item"
    return "an object"


def check_traits(
    field: str, traits: Any, schema: StoreSchema, *, allow_null: bool
) -> list[TraitWrite]:
    """Validate a `traits` map ({group: {trait: value}}) against the store."""
    if not isinstance(traits, dict):
        raise ValidationFailed(f"{field}: must be an object of trait groups")
    if len(traits) > MAX_GROUPS_PER_WRITE:
        raise ValidationFailed(f"{field}: at most {MAX_GROUPS_PER_WRITE} trait groups")
    writes: list[TraitWrite] = []
    for group, values in traits.items():
        group_field = f"{field}.{group}"
        definitions = schema.groups.get(group)
        if definitions is None:
            raise ValidationFailed(f"{group_field}: the store has no trait group '{group}'")
        if not isinstance(values, dict):
            raise ValidationFailed(f"{group_field}: must be an object of traits")
        if len(values) > MAX_TRAITS_PER_GROUP_WRITE:
            raise ValidationFailed(f"{group_field}: at most {MAX_TRAITS_PER_GROUP_WRITE} traits")
        for name, value in values.items():
            trait_field = f"{group_field}.{name}"
            spec = definitions.get(name)
            if spec is None:
                raise ValidationFailed(
                    f"{trait_field}: trait group '{group}' has no trait '{name}'"
                )
            if value is None:
                if not allow_null:
                    raise ValidationFailed(f"{trait_field}: null is only allowed in PATCH")
            else:
                check_value(trait_field, spec, value)
            writes.append(TraitWrite(group, name, value))
    return writes


def promoted_keys(field: str, writes: list[TraitWrite], schema: StoreSchema) -> list[Key]:
    """Normalized identifiers of the promoted traits among `writes`."""
    keys: list[Key] = []
    for write in writes:
        id_type = schema.promotion(write.group, write.name)
        if id_type is None or write.value is None or write.value == "":
            continue
        config = schema.configs.get(id_type)
        if config is None:
            continue
        value = normalize_field(
            f"{field}.{write.group}.{write.name}", write.value, config.normalization
        )
        keys.append((id_type, value))
    return keys


def record_from_traits(field: str, traits: Any, schema: StoreSchema) -> Record:
    """A create/bulk item: valid traits and at least one promoted identifier."""
    writes = check_traits(field, traits, schema, allow_null=False)
    keys = promoted_keys(field, writes, schema)
    if not keys:
        promoted = schema.promoted_traits()
        raise ValidationFailed(
            f"{field}: at least one trait promoted to an identifier is required "
            f"({', '.join(promoted) or 'none are configured'})"
        )
    return Record(writes=writes, keys=keys)
