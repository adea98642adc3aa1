"""What a store accepts (its trait definitions and identity settings), loaded
once per schema version.

The cache belongs to the app (`AppContext.schemas`); data-plane transactions
hand it over in `session.info["schemas"]`. Without one (jobs, scripts) the
schema is read from the database each time."""

from __future__ import annotations

from sqlalchemy.orm import Session

from convmem.identity import service as identity
from convmem.identity.resolution import IdConfig
from convmem.profiles.rules import StoreSchema
from convmem.stores.models import StoreRef
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


# The cache maps store id -> (schema_version, schema). Reads check the version
# on the store row they already loaded, so a change made by any process is
# seen at once.
_CACHE_LIMIT = 10_000


def load(session: Session, store: StoreRef) -> StoreSchema:
    cache: dict[str, tuple[int, StoreSchema]] | None = session.info.get("schemas")
    cached = cache.get(store.id) if cache is not None else None
    if cached is not None and cached[0] == store.schema_version:
        return cached[1]
    schema = _read(session, store.id)
    if cache is not None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[store.id] = (store.schema_version, schema)
    return schema


def _read(session: Session, store_id: str) -> StoreSchema:
    settings = identity.get(session, store_id=store_id)
    groups: dict[str, dict[str, object]] = {}
    def_keys: dict[str, str] = {}
    for row in traits.all_traits(session, store_id=store_id):
        groups.setdefault(row.group_name, {})[row.name] = traits.spec_of(row)
        def_keys[f"{row.group_name}.{row.name}"] = row.sort_key
    for name in traits.group_names(session, store_id=store_id):
        groups.setdefault(name, {})
    return StoreSchema(
        groups=groups,  # type: ignore[arg-type]
        configs={c["idType"]: id_config(c) for c in settings.identifier_configs},
        rules=list(settings.matching_rules),
        def_keys=def_keys,
    )
