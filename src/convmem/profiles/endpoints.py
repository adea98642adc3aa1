"""Profile routes. Each declares whether its work reads, writes or writes in
bulk (StoreRead / StoreWrite / StoreBulk), which decides where it runs; parsing
and JSON rendering stay on the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.convertors import StringConvertor, register_url_convertor

from convmem.kit.http import JSONResponse
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import DataPlanePage
from convmem.kit.schemas import ERRORS, Accepted
from convmem.profiles import identifiers, service
from convmem.profiles.schemas import (
    BulkProfiles,
    IdentifierIn,
    IdentifierSet,
    IdentifierSets,
    IdentifierUpdate,
    LookupOut,
    ProfileCreated,
    ProfileData,
    ProfileIds,
    ProfileOut,
    TraitPage,
    profile_json,
    trait_json,
)
from convmem.stores.endpoints import StoreBulk, StoreRead, StoreWrite


class ProfileIdConvertor(StringConvertor):
    """A path segment other than the literal routes beside `{profileId}`, so that
    `PATCH .../Profiles/Lookup` is a 405 of Lookup, not a malformed profile id."""

    regex = "(?!(?:Lookup|Bulk|Imports)(?:/|$))[^/]+"


register_url_convertor("profile_id", ProfileIdConvertor())
router = APIRouter(
    prefix="/v1/Stores/{storeId}/Profiles",
    route_class=BoundedRoute,
    tags=["Profile"],
    responses=ERRORS,
)
TraitGroupsParam = Annotated[str | None, Query(alias="traitGroups", min_length=1, max_length=256)]


def accepted(message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=202)


@router.get("", response_model=ProfileIds)
async def list_profiles(run: StoreRead, page: DataPlanePage) -> JSONResponse:
    result = await run(lambda s, store: service.list_ids(s, store=store, page=page))
    return JSONResponse({"profiles": result.items, "meta": result.meta("profiles")})


@router.post("", status_code=202, response_model=ProfileCreated)
async def create_profile(body: ProfileData, run: StoreWrite) -> JSONResponse:
    profile_id = await run(lambda s, store: service.create(s, store=store, data=body))
    return accepted("Profile resolved and accepted for processing.", id=profile_id)


@router.put("/Bulk", status_code=202, response_model=Accepted)
async def bulk_upsert(body: BulkProfiles, run: StoreBulk) -> JSONResponse:
    await run(lambda s, store: service.bulk(s, store=store, items=body.profiles))
    return accepted("Profile batch accepted for processing.")


@router.post("/Lookup", tags=["Retrieval"], response_model=LookupOut)
async def lookup(body: IdentifierIn, run: StoreRead) -> JSONResponse:
    normalized, profiles = await run(
        lambda s, store: service.lookup(s, store=store, id_type=body.idType, value=body.value)
    )
    return JSONResponse({"normalizedValue": normalized, "profiles": profiles})


@router.get("/{profileId:profile_id}", response_model=ProfileOut)
async def fetch_profile(
    profileId: str, run: StoreRead, trait_groups: TraitGroupsParam = None
) -> JSONResponse:
    groups = service.parse_groups(trait_groups)
    profile, traits = await run(
        lambda s, store: service.read(s, store=store, profile_id=profileId, groups=groups)
    )
    return JSONResponse(profile_json(profile, traits))


@router.patch("/{profileId:profile_id}", status_code=202, response_model=Accepted)
async def patch_profile(profileId: str, body: ProfileData, run: StoreWrite) -> JSONResponse:
    await run(lambda s, store: service.patch(s, store=store, profile_id=profileId, data=body))
    return accepted("Trait modifications accepted for processing.")


@router.delete("/{profileId:profile_id}", status_code=202, response_model=Accepted)
async def delete_profile(profileId: str, run: StoreWrite) -> JSONResponse:
    await run(lambda s, store: service.delete(s, store=store, profile_id=profileId))
    return accepted("Profile accepted for deletion.")


@router.get("/{profileId:profile_id}/Traits", tags=["Traits"], response_model=TraitPage)
async def list_traits(
    profileId: str, run: StoreRead, page: DataPlanePage, trait_groups: TraitGroupsParam = None
) -> JSONResponse:
    groups = service.parse_groups(trait_groups)
    result = await run(
        lambda s, store: service.list_traits(
            s, store=store, profile_id=profileId, groups=groups, page=page
        )
    )
    return JSONResponse(
        {"traits": [trait_json(row) for row in result.items], "meta": result.meta("traits")}
    )


@router.get(
    "/{profileId:profile_id}/Identifiers", tags=["Identifiers"], response_model=IdentifierSets
)
async def list_identifiers(profileId: str, run: StoreRead) -> JSONResponse:
    sets = await run(lambda s, store: identifiers.list_all(s, store=store, profile_id=profileId))
    return JSONResponse({"identifiers": sets})


@router.post(
    "/{profileId:profile_id}/Identifiers",
    tags=["Identifiers"],
    status_code=202,
    response_model=Accepted,
)
async def add_identifier(profileId: str, body: IdentifierIn, run: StoreWrite) -> JSONResponse:
    await run(lambda s, store: identifiers.add(s, store=store, profile_id=profileId, data=body))
    return accepted("Identifier accepted for processing.")


@router.get(
    "/{profileId:profile_id}/Identifiers/{idType}",
    tags=["Identifiers"],
    response_model=IdentifierSet,
)
async def fetch_identifier(profileId: str, idType: str, run: StoreRead) -> JSONResponse:
    return JSONResponse(
        await run(
            lambda s, store: identifiers.fetch(s, store=store, profile_id=profileId, id_type=idType)
        )
    )


@router.patch(
    "/{profileId:profile_id}/Identifiers/{idType}",
    tags=["Identifiers"],
    status_code=202,
    response_model=Accepted,
)
async def patch_identifier(
    profileId: str, idType: str, body: IdentifierUpdate, run: StoreWrite
) -> JSONResponse:
    await run(
        lambda s, store: identifiers.replace(
            s, store=store, profile_id=profileId, id_type=idType, data=body
        )
    )
    return accepted("Identifier update accepted.")


@router.delete(
    "/{profileId:profile_id}/Identifiers/{idType}",
    tags=["Identifiers"],
    status_code=202,
    response_model=Accepted,
)
async def delete_identifier(
    profileId: str,
    idType: str,
    run: StoreWrite,
    remove_all: Annotated[bool, Query(alias="removeAll")] = False,
) -> JSONResponse:
    await run(
        lambda s, store: identifiers.remove(
            s, store=store, profile_id=profileId, id_type=idType, remove_all=remove_all
        )
    )
    return accepted("Identifier removal accepted.")
