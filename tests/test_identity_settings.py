from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import STORES, make_store, make_trait_group, operation_of


def url(store_id: str) -> str:
    return f"{STORES}/{store_id}/IdentityResolutionSettings"


DOC_EXAMPLE: dict[str, Any] = {
    "identifierConfigs": [
        {
            "idType": "email",
            "matchingAlgo": "exact",
            "normalization": "email",
            "enforceUnique": True,
        },
        {
            "idType": "whatsapp",
            "matchingAlgo": "exact",
            "normalization": "trim",
            "enforceUnique": True,
        },
        {
            "idType": "phone",
            "matchingAlgo": "exact",
            "normalization": "phone",
            "enforceUnique": True,
        },
    ],
    "matchingRules": ["email", "whatsapp", "phone"],
}


def test_put_replaces_settings_and_fills_defaults(api: Api) -> None:
    store_id = make_store(api)
    before = api.get(url(store_id))
    response = api.put(
        url(store_id), json=DOC_EXAMPLE, headers={"If-Match": before.headers["ETag"]}
    )
    assert response.status_code == 202, response.text
    assert operation_of(api, response)["status"] == "COMPLETED"
    after = api.get(url(store_id))
    body = after.json()
    assert body["version"] == 2
    assert body["matchingRules"] == ["email", "whatsapp", "phone"]
    assert body["identifierConfigs"][0] == {
        "idType": "email",
        "matchingAlgo": "exact",
        "matchingThreshold": 75,
        "limit": 100,
        "limitPolicy": "fifo",
        "enforceUnique": True,
        "normalization": "email",
    }
    assert after.headers["ETag"] != before.headers["ETag"]


def test_enums_are_case_insensitive_and_returned_in_spec_spelling(api: Api) -> None:
    store_id = make_store(api)
    body = {
        "identifierConfigs": [
            {
                "idType": "email",
                "normalization": "EMAIL",
                "matchingAlgo": "EXACT",
                "limitPolicy": "FIFO",
            },
            {"idType": "phone", "normalization": "Phone"},
            {
                "idType": "loyaltyId",
                "matchingAlgo": "Fuzzy",
                "matchingThreshold": 90,
                "limit": 3,
                "limitPolicy": "LIFO",
                "enforceUnique": False,
                "normalization": "NONE",
            },
        ],
        "matchingRules": ["loyaltyId", "email"],
        "version": 7,  # what a client fetched; ignored
    }
    assert api.put(url(store_id), json=body).status_code == 202
    configs = api.get(url(store_id)).json()["identifierConfigs"]
    assert configs[0]["normalization"] == "email" and configs[0]["limitPolicy"] == "fifo"
    assert configs[2] == {
        "idType": "loyaltyId",
        "matchingAlgo": "fuzzy",
        "matchingThreshold": 90,
        "limit": 3,
        "limitPolicy": "lifo",
        "enforceUnique": False,
        "normalization": "none",
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"identifierConfigs": [], "matchingRules": ["email"]}, "identifierConfigs"),
        ({"identifierConfigs": [{"idType": "email"}], "matchingRules": []}, "matchingRules"),
        (
            {"identifierConfigs": [{"idType": "email"}], "matchingRules": ["phone"]},
            "matchingRules[0]",
        ),
        (
            {
                "identifierConfigs": [{"idType": "email"}, {"idType": "email"}],
                "matchingRules": ["email"],
            },
            "more than once",
        ),
        (
            {"identifierConfigs": [{"idType": "email"}], "matchingRules": ["email", "email"]},
            "matchingRules[1]",
        ),
        ({"identifierConfigs": [{"idType": "e"}], "matchingRules": ["e"]}, "idType"),
        (
            {
                "identifierConfigs": [{"idType": "email", "normalization": "upper"}],
                "matchingRules": ["email"],
            },
            "normalization",
        ),
        (
            {
                "identifierConfigs": [{"idType": "email", "matchingThreshold": 100}],
                "matchingRules": ["email"],
            },
            "matchingThreshold",
        ),
        (
            {"identifierConfigs": [{"idType": "email", "limit": 0}], "matchingRules": ["email"]},
            "limit",
        ),
        (
            {
                "identifierConfigs": [{"idType": "email", "limitPolicy": "random"}],
                "matchingRules": ["email"],
            },
            "limitPolicy",
        ),
        (
            {"identifierConfigs": [{"idType": "email", "extra": 1}], "matchingRules": ["email"]},
            "extra",
        ),
        (
            {
                "identifierConfigs": [{"idType": f"id{n}"} for n in range(16)],
                "matchingRules": ["id0"],
            },
            "identifierConfigs",
        ),
        # Contact.phone is promoted to `phone`, which this drops.
        (
            {
                "identifierConfigs": [{"idType": "email", "normalization": "email"}],
                "matchingRules": ["email"],
            },
            "Contact.phone",
        ),
    ],
)
def test_invalid_settings_are_400_and_change_nothing(
    api: Api, body: dict[str, Any], fragment: str
) -> None:
    store_id = make_store(api)
    response = api.put(url(store_id), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert fragment in response.json()["message"]
    assert api.get(url(store_id)).json()["version"] == 1


def test_dropping_an_id_type_a_custom_trait_promotes_to_is_refused(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Chat",
        traits={"wa": {"dataType": "STRING", "idTypePromotion": "whatsapp"}},
    )
    body = {
        "identifierConfigs": [
            {"idType": "email", "normalization": "email"},
            {"idType": "phone", "normalization": "phone"},
        ],
        "matchingRules": ["email", "phone"],
    }
    response = api.put(url(store_id), json=body)
    assert response.status_code == 400
    assert "Chat.wa" in response.json()["message"]


def test_stale_if_match_is_412(api: Api) -> None:
    store_id = make_store(api)
    etag = api.get(url(store_id)).headers["ETag"]
    assert api.put(url(store_id), json=DOC_EXAMPLE, headers={"If-Match": etag}).status_code == 202
    stale = api.put(url(store_id), json=DOC_EXAMPLE, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["code"] == 520043
    # An ETag of another resource (the store itself) does not match either.
    store_etag = api.get(f"{STORES}/{store_id}").headers["ETag"]
    assert (
        api.put(url(store_id), json=DOC_EXAMPLE, headers={"If-Match": store_etag}).status_code
        == 412
    )
    assert api.put(url(store_id), json=DOC_EXAMPLE, headers={"If-Match": "*"}).status_code == 202


def test_new_id_types_become_promotable(api: Api) -> None:
    store_id = make_store(api)
    settings = api.get(url(store_id)).json()
    settings["identifierConfigs"].append({"idType": "loyaltyId"})
    settings["matchingRules"].append("loyaltyId")
    assert api.put(url(store_id), json=settings).status_code == 202
    traits = {"loyaltyId": {"dataType": "STRING", "idTypePromotion": "loyaltyId"}}
    make_trait_group(api, store_id, name="Loyalty", traits=traits)
