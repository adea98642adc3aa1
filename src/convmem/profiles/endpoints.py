from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from convmem.kit.http import JSONResponse, SessionDep
from convmem.kit.pagination import DataPlanePage
from convmem.profiles import identifiers, service
from convmem.profiles.schemas import (
    BulkProfiles,
    IdentifierIn,
    IdentifierUpdate,
    ProfileData,
    profile_json,
    trait_json,
)
from convmem.stores.endpoints import ActiveStoreDep

router = APIRouter(prefix="/v1/Stores/{storeId}/Profiles", tags=["Profile"])
TraitGroupsParam = Annotated[str | None, Query(alias="traitGroups", min_length=1, max_length=256)]


def accepted(message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=202)


@router.get("")
def list_profiles(store: ActiveStoreDep, session: SessionDep, page: DataPlanePage) -> JSONResponse:
    result = service.list_ids(session, store_id=store.id, page=page)
    return JSONResponse({"profiles": result.items, "meta": result.meta("profiles")})


@router.post("")
def create_profile(body: ProfileData, store: ActiveStoreDep, session: SessionDep) -> JSONResponse:
    profile_id = service.create(session, store_id=store.id, data=body)
    return accepted("Profile resolved and accepted for processing.", id=profile_id)


@router.put("/Bulk")
def bulk_upsert(body: BulkProfiles, store: ActiveStoreDep, session: SessionDep) -> JSONResponse:
    service.bulk(session, store_id=store.id, items=body.profiles)
    return accepted("Profile batch accepted for processing.")


@router.post("/Lookup", tags=["Retrieval"])
def lookup(body: IdentifierIn, store: ActiveStoreDep, session: SessionDep) -> JSONResponse:
    normalized, profiles = service.lookup(
        session, store_id=store.id, id_type=body.idType, value=body.value
    )
    return JSONResponse({"normalizedValue": normalized, "profiles": profiles})


@router.get("/{profileId}")
def fetch_profile(
    profileId: str,
    store: ActiveStoreDep,
    session: SessionDep,
    trait_groups: TraitGroupsParam = None,
) -> JSONResponse:
    profile, traits = service.read(
        session,
        store_id=store.id,
        profile_id=profileId,
        groups=service.parse_groups(trait_groups),
    )
    return JSONResponse(profile_json(profile, traits))


@router.patch("/{profileId}")
def patch_profile(
    profileId: str, body: ProfileData, store: ActiveStoreDep, session: SessionDep
) -> JSONResponse:
    service.patch(session, store_id=store.id, profile_id=profileId, data=body)
    return accepted("Trait modifications accepted for processing.")


@router.delete("/{profileId}")
def delete_profile(profileId: str, store: ActiveStoreDep, session: SessionDep) -> JSONResponse:
    service.delete(session, store_id=store.id, profile_id=profileId)
    return accepted("Profile accepted for deletion.")


@router.get("/{profileId}/Traits", tags=["Traits"])
def list_traits(
    profileId: str,
    store: ActiveStoreDep,
    session: SessionDep,
    page: DataPlanePage,
    trait_groups: TraitGroupsParam = None,
) -> JSONResponse:
    result = service.list_traits(
        session,
        store_id=store.id,
        profile_id=profileId,
        groups=service.parse_groups(trait_groups),
        page=page,
    )
    return JSONResponse(
        {"traits": [trait_json(row) for row in result.items], "meta": result.meta("traits")}
    )


@router.get("/{profileId}/Identifiers", tags=["Identifiers"])
def list_identifiers(profileId: str, store: ActiveStoreDep, session: SessionDep) -> JSONResponse:
    sets = identifiers.list_all(session, store_id=store.id, profile_id=profileId)
    return JSONResponse({"identifiers": sets})


@router.post("/{profileId}/Identifiers", tags=["Identifiers"])
def add_identifier(
    profileId: str, body: IdentifierIn, store: ActiveStoreDep, session: SessionDep
) -> JSONResponse:
    identifiers.add(session, store_id=store.id, profile_id=profileId, data=body)
    return accepted("Identifier accepted for processing.")


@router.get("/{profileId}/Identifiers/{idType}", tags=["Identifiers"])
def fetch_identifier(
    profileId: str, idType: str, store: ActiveStoreDep, session: SessionDep
) -> JSONResponse:
    return JSONResponse(
        identifiers.fetch(session, store_id=store.id, profile_id=profileId, id_type=idType)
    )


@router.patch("/{profileId}/Identifiers/{idType}", tags=["Identifiers"])
def patch_identifier(
    profileId: str,
    idType: str,
    body: IdentifierUpdate,
    store: ActiveStoreDep,
    session: SessionDep,
) -> JSONResponse:
    identifiers.replace(session, store_id=store.id, profile_id=profileId, id_type=idType, data=body)
    return accepted("Identifier update accepted.")


@router.delete("/{profileId}/Identifiers/{idType}", tags=["Identifiers"])
def delete_identifier(
    profileId: str,
    idType: str,
    store: ActiveStoreDep,
    session: SessionDep,
    remove_all: Annotated[bool, Query(alias="removeAll")] = False,
) -> JSONResponse:
    identifiers.remove(
        session, store_id=store.id, profile_id=profileId, id_type=idType, remove_all=remove_all
    )
    return accepted("Identifier removal accepted.")
