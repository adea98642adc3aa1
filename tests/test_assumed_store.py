"""A data-plane request on a store this process used before assumes the store
is still ACTIVE at the schema version it saw, and checks that in its first
query (stores.endpoints.StoreWork). Every change to the store must still be
seen by the very next request, exactly as if it had read the store first."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.factories import STORES, make_profile, make_store, make_trait_group, profiles_url


def lookup(api: Api, store_id: str, value: str, id_type: str = "email") -> Any:
    return api.post(f"{profiles_url(store_id)}/Lookup", json={"idType": id_type, "value": value})


def test_reads_of_a_known_store_take_one_statement(api: Api, statements: list[str]) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="one@example.com", firstName="One")
    assert lookup(api, store_id, "one@example.com").status_code == 200
    statements.clear()
    found = lookup(api, store_id, "one@example.com")
    assert found.json()["profiles"] == [profile_id]
    assert len(statements) == 1, statements
    statements.clear()
    fetched = api.get(profiles_url(store_id, profile_id))
    assert fetched.json()["traits"]["Contact"] == {"email": "one@example.com", "firstName": "One"}
    assert len(statements) == 1, statements
    statements.clear()
    assert lookup(api, store_id, "nobody@example.com").json()["profiles"] == []
    assert len(statements) == 1, statements


def test_a_deleted_store_is_404_on_every_route_at_once(api: Api) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="gone@example.com")
    url = profiles_url(store_id)
    assert lookup(api, store_id, "gone@example.com").status_code == 200
    assert api.get(profiles_url(store_id, profile_id)).status_code == 200
    assert api.delete(f"{STORES}/{store_id}").status_code == 202
    for response in (
        lookup(api, store_id, "gone@example.com"),
        api.get(profiles_url(store_id, profile_id)),
        api.get(url),
        api.post(url, json={"traits": {"Contact": {"email": "new@example.com"}}}),
        api.patch(profiles_url(store_id, profile_id), json={"traits": {"Contact": {"city": "X"}}}),
        api.get(profiles_url(store_id, profile_id, "Identifiers")),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == 520041


def test_another_account_never_reaches_a_known_store(api: Api, other_api: Api) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="mine@example.com")
    assert api.get(profiles_url(store_id, profile_id)).status_code == 200
    assert other_api.get(profiles_url(store_id, profile_id)).json()["code"] == 520041
    assert lookup(other_api, store_id, "mine@example.com").json()["code"] == 520041


def test_a_trait_added_after_use_is_writable_at_once(api: Api) -> None:
    store_id = make_store(api)
    make_profile(api, store_id, email="before@example.com")
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    created = api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"email": "after@example.com"}, "Loyalty": {"tier": "gold"}}},
    )
    assert created.status_code == 202, created.text
    fetched = api.get(profiles_url(store_id, created.json()["id"])).json()
    assert fetched["traits"]["Loyalty"] == {"tier": "gold"}


def test_a_trait_deleted_after_use_is_refused_and_nothing_is_written(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={"tier": {"dataType": "STRING"}, "points": {"dataType": "NUMBER"}},
    )
    body = {"traits": {"Contact": {"email": "x@example.com"}, "Loyalty": {"tier": "gold"}}}
    first = api.post(profiles_url(store_id), json=body)
    assert first.status_code == 202
    group = f"{STORES}/{store_id}/TraitGroups/Loyalty"
    deleted = api.patch(group, json={"traits": {"tier": {"dataType": ""}}})
    assert deleted.status_code == 202, deleted.text
    body["traits"]["Contact"]["email"] = "y@example.com"
    refused = api.post(profiles_url(store_id), json=body)
    assert refused.status_code == 400, refused.text
    assert "tier" in refused.json()["message"]
    assert lookup(api, store_id, "y@example.com").json()["profiles"] == []
    # The value written before is gone from reads with its definition.
    fetched = api.get(profiles_url(store_id, first.json()["id"])).json()
    assert "Loyalty" not in fetched["traits"]


def test_identity_settings_changed_after_use_apply_at_once(api: Api) -> None:
    store_id = make_store(api)
    make_profile(api, store_id, email="known@example.com")
    assert lookup(api, store_id, "known@example.com").status_code == 200
    settings_url = f"{STORES}/{store_id}/IdentityResolutionSettings"
    current = api.get(settings_url)
    body = current.json()
    configs = [
        {k: v for k, v in c.items() if k != "version"} for c in body["identifierConfigs"]
    ] + [{"idType": "loyaltyId", "matchingAlgo": "exact", "normalization": "trim"}]
    changed = api.put(
        settings_url,
        json={"identifierConfigs": configs, "matchingRules": body["matchingRules"]},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 202, changed.text
    found = lookup(api, store_id, "  L-1 ", id_type="loyaltyId")
    assert found.status_code == 200, found.text
    assert found.json() == {"normalizedValue": "L-1", "profiles": []}


def test_a_create_with_a_few_identifiers_looks_them_up_in_one_statement(
    api: Api, statements: list[str]
) -> None:
    """An email and a phone are looked up together, and the store check rides
    on that statement: no look-up per idType, no check of its own."""
    store_id = make_store(api)
    make_profile(api, store_id, email="warm@example.com")
    statements.clear()
    created = make_profile(api, store_id, email="two@example.com", phone="+14155550123")
    # (On PostgreSQL that one statement also inserts the new profile.)
    lookups = [s for s in statements if "FROM profile_identifiers" in s]
    assert len(lookups) == 1, lookups
    assert "schema_version" in lookups[0], lookups[0]
    # The same identifiers again resolve to that profile through the same statement.
    assert make_profile(api, store_id, email="two@example.com", phone="+14155550123") == created
