from __future__ import annotations

from typing import Any

import pytest

from convmem.kit.db import Database
from tests.conftest import Api
from tests.factories import STORES, finish, make_store, make_trait_group, operation_of, race

ALL_TYPES: dict[str, Any] = {
    "email": {
        "dataType": "STRING",
        "description": "User's email address",
        "validationRule": {
            "ruleType": "STRING",
            "pattern": "^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$",
            "minLength": 5,
            "maxLength": 254,
        },
    },
    "age": {
        "dataType": "NUMBER",
        "description": "User's age in years",
        "validationRule": {"ruleType": "NUMBER", "min": 0, "max": 150},
    },
    "isSubscribed": {"dataType": "BOOLEAN", "validationRule": {"ruleType": "BOOLEAN"}},
    "favoriteColors": {
        "dataType": "ARRAY",
        "validationRule": {"ruleType": "ARRAY", "minItems": 1, "maxItems": 10},
    },
}


def groups_url(store_id: str, name: str = "") -> str:
    return f"{STORES}/{store_id}/TraitGroups" + (f"/{name}" if name else "")


def test_create_and_fetch_trait_group_with_all_types(api: Api) -> None:
    store_id = make_store(api)
    response = api.post(
        groups_url(store_id),
        json={"displayName": "mixedTraits", "description": "All types", "traits": ALL_TYPES},
    )
    assert response.status_code == 202
    op = operation_of(api, response)
    assert op["status"] == "COMPLETED"
    assert op["resultUrl"].endswith("/TraitGroups/mixedTraits")

    fetched = api.get(groups_url(store_id, "mixedTraits"))
    assert fetched.status_code == 200
    group = fetched.json()["traitGroup"]
    assert group["displayName"] == "mixedTraits"
    assert group["description"] == "All types"
    assert group["version"] == 1
    assert group["traits"] == ALL_TYPES
    assert fetched.headers["ETag"]

    without = api.get(groups_url(store_id, "mixedTraits"), params={"includeTraits": "false"})
    assert "traits" not in without.json()["traitGroup"]


def test_list_includes_traits_only_when_asked(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty")
    plain = api.get(groups_url(store_id)).json()
    assert [g["displayName"] for g in plain["traitGroups"]] == ["Loyalty", "Contact"]
    assert all("traits" not in g for g in plain["traitGroups"])
    rich = api.get(groups_url(store_id), params={"includeTraits": True, "orderBy": "ASC"}).json()
    assert [g["displayName"] for g in rich["traitGroups"]] == ["Contact", "Loyalty"]
    assert rich["traitGroups"][1]["traits"] == {"note": {"dataType": "STRING"}}


def test_sdk_style_nulls_are_treated_as_absent(api: Api) -> None:
    store_id = make_store(api)
    body = {
        "displayName": "Prefs",
        "description": None,
        "traits": {
            "score": {
                "dataType": "NUMBER",
                "description": None,
                "idTypePromotion": None,
                "validationRule": {
                    "pattern": None,
                    "minLength": None,
                    "maxLength": None,
                    "ruleType": "NUMBER",
                    "min": 1,
                    "max": 5,
                    "minItems": None,
                    "maxItems": None,
                },
            }
        },
    }
    assert api.post(groups_url(store_id), json=body).status_code == 202
    group = api.get(groups_url(store_id, "Prefs")).json()["traitGroup"]
    assert group["traits"] == {
        "score": {
            "dataType": "NUMBER",
            "validationRule": {"ruleType": "NUMBER", "min": 1, "max": 5},
        }
    }


def test_enum_values_are_case_insensitive(api: Api) -> None:
    store_id = make_store(api)
    body = {
        "displayName": "Lower",
        "traits": {"n": {"dataType": "number", "validationRule": {"ruleType": "Number", "min": 0}}},
    }
    assert api.post(groups_url(store_id), json=body).status_code == 202
    trait = api.get(groups_url(store_id, "Lower")).json()["traitGroup"]["traits"]["n"]
    assert trait == {"dataType": "NUMBER", "validationRule": {"ruleType": "NUMBER", "min": 0}}


@pytest.mark.parametrize(
    ("traits", "fragment"),
    [
        ({"a": {"dataType": "DATE"}}, "traits.a.dataType"),
        ({"a": {"dataType": "STRING", "validationRule": {"ruleType": "NUMBER"}}}, "ruleType"),
        (
            {
                "a": {
                    "dataType": "STRING",
                    "validationRule": {"ruleType": "STRING", "pattern": "(["},
                }
            },
            "pattern",
        ),
        (
            {
                "a": {
                    "dataType": "NUMBER",
                    "validationRule": {"ruleType": "NUMBER", "min": 5, "max": 1},
                }
            },
            "min",
        ),
        (
            {"a": {"dataType": "NUMBER", "validationRule": {"ruleType": "NUMBER", "pattern": "x"}}},
            "pattern",
        ),
        ({"a": {"dataType": "STRING", "idTypePromotion": "loyaltyId"}}, "idTypePromotion"),
        ({"a": {"dataType": "STRING", "color": "red"}}, "color"),
        ({"a": {"dataType": ""}}, "traits.a.dataType"),
        ({"bad name": {"dataType": "STRING"}}, "bad name"),
        (
            {"a": {"dataType": "STRING", "validationRule": {"ruleType": "STRING", "maxLength": 0}}},
            "maxLength",
        ),
    ],
)
def test_invalid_trait_definitions_are_400s_naming_the_trait(
    api: Api, traits: dict[str, Any], fragment: str
) -> None:
    store_id = make_store(api)
    response = api.post(groups_url(store_id), json={"displayName": "Bad", "traits": traits})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert fragment in response.json()["message"]
    # Nothing was written.
    assert api.get(groups_url(store_id, "Bad")).json()["code"] == 520047


def test_invalid_group_names(api: Api) -> None:
    store_id = make_store(api)
    for name in ("", "has space", "x" * 65, "slash/no"):
        response = api.post(groups_url(store_id), json={"displayName": name})
        assert response.status_code == 400
        assert response.json()["code"] == 520046


def test_promotion_to_a_configured_id_type_is_allowed(api: Api) -> None:
    store_id = make_store(api)
    traits = {"wa": {"dataType": "STRING", "idTypePromotion": "whatsapp"}}
    assert (
        api.post(groups_url(store_id), json={"displayName": "Chat", "traits": traits}).status_code
        == 202
    )


def test_duplicate_group_conflicts(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty")
    again = api.post(groups_url(store_id), json={"displayName": "Loyalty"})
    assert again.status_code == 409
    assert again.json()["code"] == 520055
    contact = api.post(groups_url(store_id), json={"displayName": "Contact"})
    assert contact.json()["code"] == 520055


def test_group_and_trait_limits(api: Api) -> None:
    store_id = make_store(api)
    too_many = {f"t{n}": {"dataType": "STRING"} for n in range(96)}
    response = api.post(groups_url(store_id), json={"displayName": "Big", "traits": too_many})
    assert response.status_code == 400
    assert response.json()["code"] == 520054

    full = {f"t{n}": {"dataType": "STRING"} for n in range(95)}
    make_trait_group(api, store_id, name="Full", traits=full)
    more = api.patch(
        groups_url(store_id, "Full"), json={"traits": {"extra": {"dataType": "STRING"}}}
    )
    assert more.status_code == 400
    assert more.json()["code"] == 520054
    # Swapping one trait for another stays within the limit.
    swap = api.patch(
        groups_url(store_id, "Full"),
        json={"traits": {"t0": {"dataType": ""}, "extra": {"dataType": "STRING"}}},
    )
    assert swap.status_code == 202

    for n in range(48):  # Contact + Full + 48 = 50
        make_trait_group(api, store_id, name=f"g{n}")
    over = api.post(groups_url(store_id), json={"displayName": "g50"})
    assert over.status_code == 400
    assert over.json()["code"] == 520053


def test_patch_merges_traits_and_deletes_with_empty_data_type(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={"points": {"dataType": "NUMBER"}, "tier": {"dataType": "STRING"}},
    )
    etag = api.get(groups_url(store_id, "Loyalty")).headers["ETag"]
    response = api.patch(
        groups_url(store_id, "Loyalty"),
        json={
            "description": "Loyalty data",
            "traits": {
                "points": {"dataType": "NUMBER", "description": "Points"},
                "tier": {"dataType": ""},
                "since": {"dataType": "STRING"},
            },
        },
        headers={"If-Match": etag},
    )
    assert response.status_code == 202
    group = api.get(groups_url(store_id, "Loyalty")).json()["traitGroup"]
    assert group["description"] == "Loyalty data"
    assert group["version"] == 2
    assert group["traits"] == {
        "since": {"dataType": "STRING"},
        "points": {"dataType": "NUMBER", "description": "Points"},
    }
    stale = api.patch(groups_url(store_id, "Loyalty"), json={}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["code"] == 520043


def test_invalid_patch_writes_nothing(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty")
    response = api.patch(
        groups_url(store_id, "Loyalty"),
        json={
            "description": "changed",
            "traits": {"good": {"dataType": "STRING"}, "bad": {"dataType": "WRONG"}},
        },
    )
    assert response.status_code == 400
    group = api.get(groups_url(store_id, "Loyalty")).json()["traitGroup"]
    assert group["version"] == 1
    assert "description" not in group
    assert set(group["traits"]) == {"note"}


def test_protected_contact_traits(api: Api) -> None:
    store_id = make_store(api)
    url = groups_url(store_id, "Contact")
    for change in (
        {"email": {"dataType": ""}},
        {"phone": {"dataType": "NUMBER"}},
        {"email": {"dataType": "STRING"}},  # dropping idTypePromotion
    ):
        response = api.patch(url, json={"traits": change})
        assert response.status_code == 409, change
        assert response.json()["code"] == 520050
    deleted = api.delete(url)
    assert deleted.status_code == 409
    assert deleted.json()["code"] == 520050
    # Describing a protected trait and adding or removing other Contact traits is fine.
    ok = api.patch(
        url,
        json={
            "traits": {
                "email": {
                    "dataType": "STRING",
                    "description": "Work email",
                    "idTypePromotion": "email",
                },
                "middleName": {"dataType": "STRING"},
                "street": {"dataType": ""},
            }
        },
    )
    assert ok.status_code == 202
    traits = api.get(url).json()["traitGroup"]["traits"]
    assert traits["email"]["description"] == "Work email"
    assert "middleName" in traits and "street" not in traits


def test_delete_trait_group(api: Api, db: Database) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Temp")
    response = api.delete(groups_url(store_id, "Temp"))
    assert response.status_code == 202
    # The group is gone at once; its profile values are removed in the background.
    assert operation_of(api, response)["status"] == "PENDING"
    assert finish(api, db, response)["status"] == "COMPLETED"
    missing = api.get(groups_url(store_id, "Temp"))
    assert missing.status_code == 404
    assert missing.json()["code"] == 520047
    assert api.delete(groups_url(store_id, "Temp")).json()["code"] == 520047
    assert api.patch(groups_url(store_id, "Temp"), json={}).json()["code"] == 520047
    # The name can be used again.
    make_trait_group(api, store_id, name="Temp")


def test_traits_of_a_group_paginate(api: Api) -> None:
    store_id = make_store(api)
    traits = {f"t{n:02d}": {"dataType": "STRING"} for n in range(95)}
    make_trait_group(api, store_id, name="Many", traits=traits)
    seen: list[str] = []
    params: dict[str, Any] = {"pageSize": 40, "orderBy": "ASC"}
    while True:
        body = api.get(groups_url(store_id, "Many"), params=params).json()
        seen.extend(body["traitGroup"]["traits"])
        token = body["meta"].get("nextToken")
        if not token:
            break
        params["pageToken"] = token
    assert seen == sorted(traits)


def test_concurrent_group_patches_with_one_if_match(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Race")
    etag = api.get(groups_url(store_id, "Race")).headers["ETag"]
    statuses = race(
        2,
        lambda n: (
            api.patch(
                groups_url(store_id, "Race"),
                json={"traits": {f"w{n}": {"dataType": "STRING"}}},
                headers={"If-Match": etag},
            ).status_code
        ),
    )
    assert sorted(statuses) == [202, 412]
    group = api.get(groups_url(store_id, "Race")).json()["traitGroup"]
    assert group["version"] == 2
    assert len(group["traits"]) == 2  # note + exactly one writer's trait
