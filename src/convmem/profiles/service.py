"""Profile use cases: create, bulk upsert, read, patch, delete, list, lookup."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from convmem.identity import rules as id_rules
from convmem.identity.normalize import normalize_field
from convmem.kit import ids
from convmem.kit.errors import Conflict, ProfileMoved, ProfileNotFound, ValidationFailed
from convmem.kit.pagination import Page, PageRequest, paginate, paginate_items
from convmem.profiles import engine, store_schema, trait_values
from convmem.profiles import repository as repo
from convmem.profiles.models import Profile
from convmem.profiles.rules import (
    Record,
    StoreSchema,
    check_traits,
    promoted_keys,
    record_from_traits,
)
from convmem.profiles.schemas import ProfileData
from convmem.stores.models import StoreRef

MAX_LOOKUP_RESULTS = 100
MAX_TRAITS_PAGE = 100


def check_id(profile_id: str) -> None:
    ids.require(
        ids.PROFILE_ID, profile_id, field="profileId", prefix=ids.PROFILE, error=ValidationFailed
    )


def get_canonical(session: Session, *, store: StoreRef, profile_id: str) -> Any:
    """The profile, or ProfileMoved when the id was merged into another one."""
    check_id(profile_id)
    profile = repo.get(session, store.id, profile_id)
    _require_canonical(profile, profile_id)
    return profile


def _require_canonical(profile: Any, profile_id: str) -> None:
    if profile is None:
        raise ProfileNotFound(f"Profile {profile_id} not found")
    if profile.merged_into is not None:
        raise ProfileMoved(profile.merged_into)


def parse_groups(value: str | None) -> list[str] | None:
    if value is None:
        return None
    groups = [g.strip() for g in value.split(",") if g.strip()]
    if not groups:
        raise ValidationFailed("query parameter traitGroups: list at least one trait group name")
    return groups


def create(session: Session, *, store: StoreRef, data: ProfileData) -> str:
    schema = store_schema.load(session, store)
    record = record_from_traits("traits", data.traits or {}, schema)
    # The request's whole write: a new profile may commit alone (engine.write).
    return engine.write_all(session, store.id, schema, [record], alone=True)[0]


def bulk(session: Session, *, store: StoreRef, items: list[ProfileData]) -> list[str]:
    schema = store_schema.load(session, store)
    # Every item is checked before anything is written: one bad item fails the batch.
    records = [
        record_from_traits(f"profiles[{n}].traits", item.traits or {}, schema)
        for n, item in enumerate(items)
    ]
    return engine.write_all(session, store.id, schema, records)


def patch(session: Session, *, store: StoreRef, profile_id: str, data: ProfileData) -> str:
    if not data.traits:
        raise ValidationFailed(
            "traits: required, with at least one trait to change (null removes a trait)"
        )
    get_canonical(session, store=store, profile_id=profile_id)
    schema = store_schema.load(session, store)
    writes = check_traits("traits", data.traits or {}, schema, allow_null=True)
    record = Record(writes=writes, keys=promoted_keys("traits", writes, schema), anchor=profile_id)
    return engine.write_all(session, store.id, schema, [record])[0]


def delete(session: Session, *, store: StoreRef, profile_id: str) -> None:
    get_canonical(session, store=store, profile_id=profile_id)
    repo.lock_profiles(session, store.id, [profile_id])
    repo.delete_profile(session, store.id, profile_id)


def read(
    session: Session, *, store: StoreRef, profile_id: str, groups: list[str] | None
) -> tuple[Row[Any], list[trait_values.TraitValue]]:
    if groups is None:  # the common case: the profile and its traits in one query
        check_id(profile_id)
        profile, traits = repo.profile_with_traits(session, store.id, profile_id)
        _require_canonical(profile, profile_id)
    else:
        profile = get_canonical(session, store=store, profile_id=profile_id)
        traits = trait_values.of(session, store.id, [profile.id], groups)
    schema = store_schema.load(session, store)
    return profile, [t for t in traits if schema.is_live(t.trait_key, t.def_key)]


def list_ids(session: Session, *, store: StoreRef, page: PageRequest) -> Page[str]:
    return paginate(
        session,
        repo.list_query(store.id),
        Profile.id,
        page,
        key_of=lambda pid: pid,
        scope="profiles",
    )


def list_traits(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    groups: list[str] | None,
    page: PageRequest,
) -> Page[trait_values.TraitValue]:
    profile = get_canonical(session, store=store, profile_id=profile_id)
    if page.page_size > MAX_TRAITS_PAGE:  # the response holds at most 100 traits
        page = dataclasses.replace(page, page_size=MAX_TRAITS_PAGE)
    schema = store_schema.load(session, store)
    # A profile holds at most 50 groups of 95 traits: paged in memory.
    live = [
        t
        for t in trait_values.of(session, store.id, [profile.id], groups)
        if schema.is_live(t.trait_key, t.def_key)
    ]
    return paginate_items(live, page, key_of=lambda t: t.trait_key, scope="traits")


def configured(schema: StoreSchema, field: str, id_type: str) -> None:
    if id_type not in schema.configs:
        raise ValidationFailed(
            f"{field}: '{id_type}' is not an idType of the store's identity resolution settings "
            f"({', '.join(sorted(schema.configs))})"
        )


def lookup(session: Session, *, store: StoreRef, id_type: str, value: str) -> tuple[str, list[str]]:
    schema = store_schema.load(session, store)
    configured(schema, "idType", id_type)
    normalized = normalize_field("value", value, schema.configs[id_type].normalization)
    holders = engine.find_holders(session, store.id, schema, [(id_type, normalized)])
    return normalized, sorted(holders.get((id_type, normalized), ()))[:MAX_LOOKUP_RESULTS]


def values_stay_unique(
    session: Session, store_id: str, before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    """An idType may turn unique only while no value of it is shared by two
    profiles (connected to the id_configs_changing hook)."""
    for id_type in id_rules.turning_unique(before, after):
        shared = repo.shared_value(session, store_id, id_type)
        if shared is not None:
            raise Conflict(
                f"identifierConfigs: profiles already share the {id_type} '{shared[:80]}', "
                "so it cannot become unique; merge or fix those profiles first"
            )
