"""Identity resolution settings rules (plain functions, no database)."""

from __future__ import annotations

from typing import Any

from convmem.kit.errors import ValidationFailed

DEFAULT_IDENTIFIER_CONFIGS: list[dict[str, Any]] = [
    {"idType": "email", "normalization": "email"},
    {"idType": "phone", "normalization": "phone"},
    {"idType": "whatsapp", "normalization": "trim"},
    {"idType": "chat", "normalization": "trim"},
]
DEFAULT_MATCHING_RULES = ["email", "phone", "whatsapp", "chat"]

CONFIG_DEFAULTS: dict[str, Any] = {
    "matchingAlgo": "exact",
    "matchingThreshold": 75,
    "limit": 100,
    "limitPolicy": "fifo",
    "enforceUnique": True,
    "normalization": "trim",
}


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """An IdentifierConfig with every default filled in, in a stable key order."""
    full = {"idType": config["idType"], **CONFIG_DEFAULTS}
    full.update({k: v for k, v in config.items() if v is not None})
    return full


def check_settings(configs: list[dict[str, Any]], rules: list[str]) -> None:
    seen: set[str] = set()
    for index, config in enumerate(configs):
        id_type = config["idType"]
        if id_type in seen:
            raise ValidationFailed(
                f"identifierConfigs[{index}].idType: '{id_type}' is configured more than once"
            )
        seen.add(id_type)
    used: set[str] = set()
    for index, rule in enumerate(rules):
        if rule not in seen:
            raise ValidationFailed(
                f"matchingRules[{index}]: '{rule}' is not an idType in identifierConfigs"
            )
        if rule in used:
            raise ValidationFailed(f"matchingRules[{index}]: '{rule}' is listed more than once")
        used.add(rule)


def check_promotions_kept(promotions: dict[str, str], id_types: set[str]) -> None:
    """Every trait promoted to an identifier must keep a configured idType.

    `promotions` maps "Group.trait" to the idType it promotes to.
    """
    for trait, id_type in sorted(promotions.items()):
        if id_type not in id_types:
            raise ValidationFailed(
                f"identifierConfigs: idType '{id_type}' is still used by trait {trait} "
                "(idTypePromotion); change that trait first"
            )


def default_settings() -> tuple[list[dict[str, Any]], list[str]]:
    return [complete_config(c) for c in DEFAULT_IDENTIFIER_CONFIGS], list(DEFAULT_MATCHING_RULES)


def id_types_to_reindex(
    before: dict[str, dict[str, Any]], after: list[dict[str, Any]]
) -> list[str]:
    """idTypes whose stored identifiers must follow a new enforceUnique or matchingAlgo."""
    return [
        config["idType"]
        for config in after
        if (old := before.get(config["idType"])) is not None
        and (old["matchingAlgo"], old["enforceUnique"])
        != (config["matchingAlgo"], config["enforceUnique"])
    ]


def turning_unique(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """idTypes that had enforceUnique off and get it on."""
    old = {c["idType"]: c for c in before}
    return [
        c["idType"]
        for c in after
        if c["enforceUnique"] and c["idType"] in old and not old[c["idType"]]["enforceUnique"]
    ]
