"""Trait definition rules (plain functions, no database)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

from convmem.kit.errors import ProtectedResource, TraitLimitExceeded, ValidationFailed

MAX_TRAITS_PER_GROUP = 95
MAX_GROUPS_PER_STORE = 50
TRAIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
DATA_TYPES = ("STRING", "NUMBER", "BOOLEAN", "ARRAY")
# Values, as the cloud service bounds them (an ARRAY's strings too).
MAX_STRING_LENGTH = 1024
MAX_ARRAY_ITEMS = 100
# RE2 runs in time linear in the input; this caps the memory a pattern's
# automaton may take, so a pathological pattern is refused at definition.
_RE2_MAX_MEM = 8 << 20


class UnsafePattern(ValueError):
    """A pattern RE2 cannot run (backreferences, lookaround, too large)."""


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The pattern compiled by RE2, which never backtracks (no ReDoS)."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEM
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise UnsafePattern(reason) from None


# Which validationRule fields apply to which ruleType.
RULE_FIELDS: dict[str, frozenset[str]] = {
    "STRING": frozenset({"pattern", "minLength", "maxLength"}),
    "NUMBER": frozenset({"min", "max"}),
    "BOOLEAN": frozenset(),
    "ARRAY": frozenset({"minItems", "maxItems"}),
}


@dataclass(frozen=True)
class TraitSpec:
    data_type: str
    description: str | None = None
    validation_rule: dict[str, Any] | None = None
    id_type_promotion: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"dataType": self.data_type}
        if self.description is not None:
            body["description"] = self.description
        if self.validation_rule is not None:
            body["validationRule"] = self.validation_rule
        if self.id_type_promotion is not None:
            body["idTypePromotion"] = self.id_type_promotion
        return body


def check_trait_name(field: str, name: str) -> None:
    if not TRAIT_NAME.match(name):
        raise ValidationFailed(
            f"{field}: trait name '{name[:80]}' must be 1-64 letters, digits, '_' or '-'"
        )


def check_spec(field: str, spec: TraitSpec, *, id_types: set[str]) -> None:
    """Check one trait definition; `field` names it in errors (traits.<name>)."""
    if spec.data_type not in DATA_TYPES:
        raise ValidationFailed(
            f"{field}.dataType: must be one of {', '.join(DATA_TYPES)}, got '{spec.data_type}'"
        )
    if spec.validation_rule is not None:
        check_rule(f"{field}.validationRule", spec.data_type, spec.validation_rule)
    if spec.id_type_promotion is not None:
        if spec.id_type_promotion not in id_types:
            raise ValidationFailed(
                f"{field}.idTypePromotion: '{spec.id_type_promotion}' is not an idType of the "
                f"store's identity resolution settings ({', '.join(sorted(id_types))})"
            )
        if spec.data_type != "STRING":
            raise ValidationFailed(
                f"{field}.idTypePromotion: only STRING traits can be promoted to identifiers"
            )


def check_rule(field: str, data_type: str, rule: dict[str, Any]) -> None:
    rule_type = rule["ruleType"]
    if rule_type != data_type:
        raise ValidationFailed(
            f"{field}.ruleType: {rule_type} rule does not match dataType {data_type}"
        )
    extra = set(rule) - RULE_FIELDS[rule_type] - {"ruleType"}
    if extra:
        raise ValidationFailed(
            f"{field}: {', '.join(sorted(extra))} do(es) not apply to ruleType {rule_type}"
        )
    if "pattern" in rule:
        try:
            compile_pattern(rule["pattern"])
        except UnsafePattern as exc:
            raise ValidationFailed(
                f"{field}.pattern: not a regular expression convmem can run in linear time "
                f"({exc}); RE2 syntax is supported: no backreferences or lookaround, "
                "repetition counts up to 1000"
            ) from None
    for low, high in (("minLength", "maxLength"), ("min", "max"), ("minItems", "maxItems")):
        if low in rule and high in rule and rule[low] > rule[high]:
            raise ValidationFailed(f"{field}: {low} ({rule[low]}) exceeds {high} ({rule[high]})")


def plan_patch(
    existing: dict[str, TraitSpec],
    protected: set[str],
    changes: dict[str, TraitSpec | None],
    *,
    group: str,
    id_types: set[str],
) -> tuple[dict[str, TraitSpec], list[str]]:
    """Merge a PATCH's traits into a group: (traits to write, traits to delete).

    A change of None deletes the trait. Protected traits may change their
    description and validation rule but not be deleted, retyped or unpromoted.
    """
    upserts: dict[str, TraitSpec] = {}
    deletions: list[str] = []
    for name, spec in changes.items():
        field = f"traits.{name}"
        check_trait_name(field, name)
        if spec is None:
            if name in protected:
                raise ProtectedResource(f"Trait {group}.{name} is protected and cannot be deleted")
            if name in existing:
                deletions.append(name)
            continue
        check_spec(field, spec, id_types=id_types)
        if name in protected:
            current = existing[name]
            if spec.data_type != current.data_type:
                raise ProtectedResource(f"Trait {group}.{name} is protected and cannot be retyped")
            if spec.id_type_promotion != current.id_type_promotion:
                raise ProtectedResource(
                    f"Trait {group}.{name} is protected; its idTypePromotion cannot change"
                )
        upserts[name] = spec
    remaining = (set(existing) | set(upserts)) - set(deletions)
    if len(remaining) > MAX_TRAITS_PER_GROUP:
        raise TraitLimitExceeded(
            f"Trait group {group} would have {len(remaining)} traits; "
            f"the limit is {MAX_TRAITS_PER_GROUP}"
        )
    return upserts, deletions
