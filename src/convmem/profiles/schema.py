"""Loading a store's schema (trait definitions + identity settings)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from convmem.identity import service as identity
from convmem.identity.resolution import IdConfig
from convmem.profiles.rules import StoreSchema
from convmem.traits import repository as traits


def id_config(config: dict[str, object]) -> IdConfig:
    return IdConfig(
        id_type=str(config["idType"]),
        normalization=str(config["normalization"]),
        unique=bool(config["enforceUnique"]),
        fuzzy=config["matchingAlgo"] == "fuzzy",
        threshold=int(config["matchingThreshold"]),  # type: ignore[call-overload]
        limit=int(config["limit"]),  # type: ignore[call-overload]
        lifo=config["limitPolicy"] == "lifo",
    )


def load(session: Session, store_id: str) -> StoreSchema:
    settings = identity.get(session, store_id=store_id)
    groups: dict[str, dict[str, object]] = {}
    for row in traits.all_traits(session, store_id=store_id):
        groups.setdefault(row.group_name, {})[row.name] = traits.spec_of(row)
    for name in traits.group_names(session, store_id=store_id):
        groups.setdefault(name, {})
    return StoreSchema(
        groups=groups,  # type: ignore[arg-type]
        configs={c["idType"]: id_config(c) for c in settings.identifier_configs},
        rules=list(settings.matching_rules),
    )
