from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import STORES, make_profile, make_store, profiles_url


def settings_with(api: Api, store_id: str, **changes: dict[str, Any]) -> None:
    settings = api.get(f"{STORES}/{store_id}/IdentityResolutionSettings").json()
    for config in settings["identifierConfigs"]:
        config.update(changes.get(config["idType"], {}))
    for id_type, config in changes.items():
        if id_type not in {c["idType"] for c in settings["identifierConfigs"]}:
            settings["identifierConfigs"].append({"idType": id_type, **config})
    response = api.put(f"{STORES}/{store_id}/IdentityResolutionSettings", json=settings)
    assert response.status_code == 202, response.text


def values(api: Api, store_id: str, profile_id: str, id_type: str) -> list[str]:
    response = api.get(profiles_url(store_id, profile_id, "Identifiers", id_type))
    if response.status_code == 404:
        return []
    result: list[str] = response.json()["values"]
    return result


def test_add_fetch_and_list_identifiers(api: Api) -> None:
    store_id = make_store(api)
    pid = make_profile(api, store_id, email="i@x.io")
    response = api.post(
        profiles_url(store_id, pid, "Identifiers"),
        json={"idType": "phone", "value": "(317) 555-0100"},
    )
    assert response.status_code == 202
    assert response.json() == {"message": "Identifier accepted for processing."}
    assert values(api, store_id, pid, "phone") == ["+13175550100"]
    api.post(
        profiles_url(store_id, pid, "Identifiers"), json={"idType": "chat", "value": "  handle-1  "}
    )
    listed = api.get(profiles_url(store_id, pid, "Identifiers")).json()["identifiers"]
    assert {s["idType"]: s["values"] for s in listed} == {
        "email": ["i@x.io"],
        "phone": ["+13175550100"],
        "chat": ["handle-1"],
    }
    missing = api.get(profiles_url(store_id, pid, "Identifiers", "whatsapp"))
    assert missing.status_code == 404 and missing.json()["code"] == 520014


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"idType": "fax", "value": "1"}, "idType"),
        ({"idType": "phone", "value": "call me"}, "value"),
        ({"idType": "email", "value": "nobody"}, "value"),
        ({"idType": "email", "value": "x" * 256}, "value"),
        ({"idType": "email"}, "value"),
        ({"idType": "e", "value": "a@b.c"}, "idType"),
    ],
)
def test_bad_identifiers_are_400(api: Api, body: dict[str, Any], fragment: str) -> None:
    store_id = make_store(api)
    pid = make_profile(api, store_id, email="b@x.io")
    response = api.post(profiles_url(store_id, pid, "Identifiers"), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert fragment in response.json()["message"]


def test_patch_identifier_replaces_a_value(api: Api) -> None:
    store_id = make_store(api)
    pid = make_profile(api, store_id, phone="+13175556789")
    url = profiles_url(store_id, pid, "Identifiers", "phone")
    response = api.patch(
        url, json={"idType": "phone", "oldValue": "317-555-6789", "newValue": "+1 317 555 6798"}
    )
    assert response.status_code == 202
    assert values(api, store_id, pid, "phone") == ["+13175556798"]
    missing = api.patch(
        url, json={"idType": "phone", "oldValue": "+13175550000", "newValue": "+13175550001"}
    )
    assert missing.status_code == 404 and missing.json()["code"] == 520017
    mismatch = api.patch(url, json={"idType": "email", "oldValue": "a@b.c", "newValue": "c@d.e"})
    assert mismatch.status_code == 400


def test_delete_identifier_one_by_policy_or_all(api: Api) -> None:
    store_id = make_store(api)
    pid = make_profile(api, store_id, email="d1@x.io")
    for n in (2, 3):
        api.post(
            profiles_url(store_id, pid, "Identifiers"),
            json={"idType": "email", "value": f"d{n}@x.io"},
        )
    url = profiles_url(store_id, pid, "Identifiers", "email")
    assert api.delete(url).status_code == 202  # fifo: the oldest goes
    assert values(api, store_id, pid, "email") == ["d2@x.io", "d3@x.io"]
    settings_with(api, store_id, email={"limitPolicy": "LIFO"})
    api.delete(url)  # lifo: the newest goes
    assert values(api, store_id, pid, "email") == ["d2@x.io"]
    api.post(
        profiles_url(store_id, pid, "Identifiers"), json={"idType": "email", "value": "d4@x.io"}
    )
    assert api.delete(url, params={"removeAll": "true"}).status_code == 202
    assert values(api, store_id, pid, "email") == []
    gone = api.delete(url)
    assert gone.status_code == 404 and gone.json()["code"] == 520014


def test_limit_with_fifo_and_lifo(api: Api) -> None:
    store_id = make_store(api)
    settings_with(api, store_id, email={"limit": 2}, phone={"limit": 2, "limitPolicy": "lifo"})
    pid = make_profile(api, store_id, email="l1@x.io", phone="+13175550101")
    for n in (2, 3):
        api.post(
            profiles_url(store_id, pid, "Identifiers"),
            json={"idType": "email", "value": f"l{n}@x.io"},
        )
        api.post(
            profiles_url(store_id, pid, "Identifiers"),
            json={"idType": "phone", "value": f"+1317555010{n}"},
        )
    assert values(api, store_id, pid, "email") == ["l2@x.io", "l3@x.io"]  # oldest evicted
    assert values(api, store_id, pid, "phone") == ["+13175550101", "+13175550102"]  # newest evicted


def test_adding_another_profiles_identifier_merges(api: Api) -> None:
    store_id = make_store(api)
    first = make_profile(api, store_id, email="j1@x.io")
    second = make_profile(api, store_id, email="j2@x.io")
    response = api.post(
        profiles_url(store_id, second, "Identifiers"), json={"idType": "email", "value": "J1@x.io"}
    )
    assert response.status_code == 202
    assert api.get(profiles_url(store_id)).json()["profiles"] == [first]
    assert sorted(values(api, store_id, first, "email")) == ["j1@x.io", "j2@x.io"]


def test_unique_id_type_outside_the_matching_rules_conflicts(api: Api) -> None:
    store_id = make_store(api)
    settings_with(api, store_id, crmId={"normalization": "none"})  # unique, not a rule
    first = make_profile(api, store_id, email="k1@x.io")
    second = make_profile(api, store_id, email="k2@x.io")
    assert (
        api.post(
            profiles_url(store_id, first, "Identifiers"), json={"idType": "crmId", "value": "C-1"}
        ).status_code
        == 202
    )
    clash = api.post(
        profiles_url(store_id, second, "Identifiers"), json={"idType": "crmId", "value": "C-1"}
    )
    assert clash.status_code == 409
    assert first in clash.json()["message"]
    assert values(api, store_id, second, "crmId") == []


def test_non_unique_id_types_share_values_without_merging(api: Api) -> None:
    store_id = make_store(api)
    settings_with(api, store_id, chat={"enforceUnique": False})
    first = make_profile(api, store_id, email="n1@x.io")
    second = make_profile(api, store_id, email="n2@x.io")
    for pid in (first, second):
        api.post(
            profiles_url(store_id, pid, "Identifiers"), json={"idType": "chat", "value": "shared"}
        )
    assert len(api.get(profiles_url(store_id)).json()["profiles"]) == 2
    found = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "chat", "value": "shared"}
    ).json()
    assert found["profiles"] == sorted([first, second])
    # Making chat unique now is refused: two profiles share a value.
    settings = api.get(f"{STORES}/{store_id}/IdentityResolutionSettings").json()
    for config in settings["identifierConfigs"]:
        if config["idType"] == "chat":
            config["enforceUnique"] = True
    refused = api.put(f"{STORES}/{store_id}/IdentityResolutionSettings", json=settings)
    assert refused.status_code == 409
    assert "chat" in refused.json()["message"]


def test_lookup_errors(api: Api) -> None:
    store_id = make_store(api)
    assert (
        api.post(profiles_url(store_id, "Lookup"), json={"idType": "fax", "value": "1"}).status_code
        == 400
    )
    assert (
        api.post(
            profiles_url(store_id, "Lookup"), json={"idType": "phone", "value": "nope"}
        ).status_code
        == 400
    )
    assert api.post(profiles_url(store_id, "Lookup"), json={"idType": "phone"}).status_code == 400
    empty = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "phone", "value": "1-317-555-6789"}
    )
    assert empty.json() == {"normalizedValue": "+13175556789", "profiles": []}
