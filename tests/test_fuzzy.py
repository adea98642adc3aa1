from __future__ import annotations

from convmem.kit.db import Database
from tests.conftest import Api
from tests.factories import STORES, finish, make_store, profiles_url


def make_fuzzy(api: Api, store_id: str, threshold: int) -> None:
    settings = api.get(f"{STORES}/{store_id}/IdentityResolutionSettings").json()
    settings["identifierConfigs"].append(
        {
            "idType": "name",
            "matchingAlgo": "fuzzy",
            "matchingThreshold": threshold,
            "normalization": "trim",
        }
    )
    settings["matchingRules"].append("name")
    assert (
        api.put(f"{STORES}/{store_id}/IdentityResolutionSettings", json=settings).status_code == 202
    )


def add(api: Api, store_id: str, email: str, name: str) -> str:
    pid: str = api.post(
        profiles_url(store_id), json={"traits": {"Contact": {"email": email}}}
    ).json()["id"]
    assert (
        api.post(
            profiles_url(store_id, pid, "Identifiers"), json={"idType": "name", "value": name}
        ).status_code
        == 202
    )
    return pid


def find(api: Api, store_id: str, name: str) -> list[str]:
    result: list[str] = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "name", "value": name}
    ).json()["profiles"]
    return result


def test_fuzzy_lookup_finds_similar_values_above_the_threshold(api: Api) -> None:
    store_id = make_store(api)
    make_fuzzy(api, store_id, 85)
    jonathan = add(api, store_id, "f1@x.io", "Jonathan Smithson")
    add(api, store_id, "f2@x.io", "Maria Gonzalez")
    assert find(api, store_id, "Jonathan Smithson") == [jonathan]
    assert find(api, store_id, "Jonathon Smithson") == [jonathan]  # one typo
    assert find(api, store_id, "Xonathan Smithson") == [jonathan]  # typo in the first block
    assert find(api, store_id, "Jonathan Smithsen") == [jonathan]  # typo in the last block
    # The documented limit: typos in both the first and last three characters
    # leave no shared blocking key, so the value is never compared.
    assert find(api, store_id, "Xonathan Smithsen") == []
    assert find(api, store_id, "Jonas Smith") == []  # below the threshold
    assert find(api, store_id, "Maria Gonzales") != [jonathan]


def test_fuzzy_match_merges_on_write(api: Api) -> None:
    store_id = make_store(api)
    make_fuzzy(api, store_id, 90)
    first = add(api, store_id, "g1@x.io", "Alexandra Petrova")
    second = api.post(
        profiles_url(store_id), json={"traits": {"Contact": {"email": "g2@x.io"}}}
    ).json()["id"]
    api.post(
        profiles_url(store_id, second, "Identifiers"),
        json={"idType": "name", "value": "Alexandra Petrowa"},
    )
    assert api.get(profiles_url(store_id)).json()["profiles"] == [first]


def test_exact_id_types_stay_exact(api: Api) -> None:
    store_id = make_store(api)
    api.post(profiles_url(store_id), json={"traits": {"Contact": {"email": "exact@x.io"}}})
    found = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "email", "value": "exakt@x.io"}
    ).json()
    assert found["profiles"] == []


def test_switching_an_id_type_to_fuzzy_covers_existing_values(api: Api, db: Database) -> None:
    store_id = make_store(api)
    pid = api.post(
        profiles_url(store_id), json={"traits": {"Contact": {"email": "h@x.io"}}}
    ).json()["id"]
    api.post(
        profiles_url(store_id, pid, "Identifiers"),
        json={"idType": "chat", "value": "customer-handle-42"},
    )
    settings = api.get(f"{STORES}/{store_id}/IdentityResolutionSettings").json()
    for config in settings["identifierConfigs"]:
        if config["idType"] == "chat":
            config["matchingAlgo"] = "fuzzy"
    response = api.put(f"{STORES}/{store_id}/IdentityResolutionSettings", json=settings)
    # Stored identifiers follow in a background operation; once it is done,
    # fuzzy matching covers them.
    assert response.headers["Retry-After"] == "1"
    assert finish(api, db, response)["status"] == "COMPLETED"
    found = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "chat", "value": "customer-handle-43"}
    ).json()
    assert found["profiles"] == [pid]
