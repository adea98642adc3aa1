from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field

from convmem.kit.schemas import Accepted, Meta, RequestModel, timestamp
from convmem.profiles.trait_values import TraitValue

IdType = Annotated[str, Field(min_length=2, max_length=30)]
Value = Annotated[str, Field(max_length=255)]


class ProfileData(RequestModel):
    # Values stay raw JSON here; they are checked against the store's trait
    # definitions (and `null` means "remove" in PATCH).
    traits: dict[str, Any] | None = None


class BulkProfiles(RequestModel):
    profiles: Annotated[list[ProfileData], Field(min_length=1, max_length=1000)]


class IdentifierIn(RequestModel):
    idType: IdType
    value: Value


class IdentifierUpdate(RequestModel):
    idType: IdType
    oldValue: Value
    newValue: Value


class ProfileCreated(Accepted):
    id: str


class ProfileOut(BaseModel):
    id: str
    createdAt: str
    traits: dict[str, dict[str, Any]]


class ProfileIds(BaseModel):
    profiles: list[str]
    meta: Meta


class TraitOut(BaseModel):
    name: str
    value: Any
    traitGroup: str
    timestamp: str


class TraitPage(BaseModel):
    traits: list[TraitOut]
    meta: Meta


class LookupOut(BaseModel):
    normalizedValue: str
    profiles: list[str]


class IdentifierSet(BaseModel):
    idType: str
    values: list[str]


class IdentifierSets(BaseModel):
    identifiers: list[IdentifierSet]


def profile_json(profile: Any, traits: Sequence[Any]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for row in traits:
        groups.setdefault(row.group_name, {})[row.name] = row.value
    return {"id": profile.id, "createdAt": timestamp(profile.created_at), "traits": groups}


def trait_json(row: TraitValue) -> dict[str, Any]:
    return {
        "name": row.name,
        "value": row.value,
        "traitGroup": row.group_name,
        "timestamp": timestamp(row.updated_at),
    }
