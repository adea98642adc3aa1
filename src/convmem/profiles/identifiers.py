"""Identifier use cases on one profile: list, add, fetch, replace, remove."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import Session

from convmem.identity.normalize import normalize_field
from convmem.kit.errors import IdentifierNotFound, IdentifierValueNotFound, ValidationFailed
from convmem.profiles import engine, store_schema
from convmem.profiles import repository as repo
from convmem.profiles.rules import Record, StoreSchema
from convmem.profiles.schemas import IdentifierIn, IdentifierUpdate
from convmem.profiles.service import configured, get_canonical
from convmem.stores.models import StoreRef


def _schema_for(session: Session, store: StoreRef, id_type: str) -> StoreSchema:
    """The store's schema, once `id_type` is known to be configured in it."""
    schema = store_schema.load(session, store)
    configured(schema, "idType", id_type)
    return schema


def _values(session: Session, store: StoreRef, profile_id: str, id_type: str) -> list[str]:
    """The profile's values of `id_type`, oldest first; 404 when it has none."""
    values = [r.value for r in repo.identifiers_of(session, store.id, [profile_id], id_type)]
    if not values:
        raise IdentifierNotFound(f"Profile {profile_id} has no {id_type} identifier")
    return values


def list_all(session: Session, *, store: StoreRef, profile_id: str) -> list[dict[str, object]]:
    profile = get_canonical(session, store=store, profile_id=profile_id)
    values: dict[str, list[str]] = defaultdict(list)
    for row in repo.identifiers_of(session, store.id, [profile.id]):
        values[row.id_type].append(row.value)
    return [{"idType": t, "values": v} for t, v in values.items()]


def fetch(session: Session, *, store: StoreRef, profile_id: str, id_type: str) -> dict[str, object]:
    profile = get_canonical(session, store=store, profile_id=profile_id)
    return {"idType": id_type, "values": _values(session, store, profile.id, id_type)}


def add(session: Session, *, store: StoreRef, profile_id: str, data: IdentifierIn) -> str:
    get_canonical(session, store=store, profile_id=profile_id)
    schema = _schema_for(session, store, data.idType)
    value = normalize_field("value", data.value, schema.configs[data.idType].normalization)
    record = Record(keys=[(data.idType, value)], anchor=profile_id)
    return engine.write_all(session, store.id, schema, [record])[0]


def replace(
    session: Session, *, store: StoreRef, profile_id: str, id_type: str, data: IdentifierUpdate
) -> str:
    get_canonical(session, store=store, profile_id=profile_id)
    if data.idType != id_type:
        raise ValidationFailed(f"idType: '{data.idType}' does not match the path's '{id_type}'")
    schema = _schema_for(session, store, id_type)
    normalization = schema.configs[id_type].normalization
    old = normalize_field("oldValue", data.oldValue, normalization)
    new = normalize_field("newValue", data.newValue, normalization)
    # Both values at once, in the global key order: two swaps in opposite
    # directions must not each hold one value while waiting for the other.
    repo.lock_keys(session, store.id, [(id_type, old), (id_type, new)])
    if not repo.delete_identifiers(session, store.id, profile_id, id_type, [old]):
        raise IdentifierValueNotFound(f"Profile {profile_id} has no {id_type} '{old}'")
    record = Record(keys=[(id_type, new)], anchor=profile_id)
    return engine.write_all(session, store.id, schema, [record])[0]


def remove(
    session: Session, *, store: StoreRef, profile_id: str, id_type: str, remove_all: bool
) -> None:
    profile = get_canonical(session, store=store, profile_id=profile_id)
    schema = _schema_for(session, store, id_type)
    values = _values(session, store, profile.id, id_type)
    if not remove_all:
        # One value, chosen like the limit policy would: fifo the oldest, lifo the newest.
        values = [values[-1] if schema.configs[id_type].lifo else values[0]]
    repo.delete_identifiers(session, store.id, profile.id, id_type, values)
