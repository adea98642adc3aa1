from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from convmem.kit.db import Database
from convmem.profiles.models import Profile
from tests.conftest import Api
from tests.factories import ALYSSA, STORES, make_profile, make_store, make_trait_group, profiles_url


def test_documented_create_request_works_on_a_new_store(api: Api) -> None:
    store_id = make_store(api)
    response = api.post(profiles_url(store_id), json=ALYSSA)
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"message", "id"}
    profile_id = body["id"]
    assert profile_id.startswith("mem_profile_")

    fetched = api.get(profiles_url(store_id, profile_id))
    assert fetched.status_code == 200
    profile = fetched.json()
    assert profile["id"] == profile_id
    assert profile["createdAt"].endswith("Z")
    assert profile["traits"] == ALYSSA["traits"]

    identifiers = api.get(profiles_url(store_id, profile_id, "Identifiers")).json()["identifiers"]
    assert {s["idType"]: s["values"] for s in identifiers} == {
        "email": ["alyssa.mock@example.com"],
        "phone": ["+13175551234"],
    }


def test_same_identifiers_resolve_to_the_same_profile(api: Api) -> None:
    store_id = make_store(api)
    first = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    again = api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"email": "  ALYSSA.mock@Example.com", "firstName": "Aly"}}},
    ).json()["id"]
    assert again == first
    assert api.get(profiles_url(store_id)).json()["profiles"] == [first]
    traits = api.get(profiles_url(store_id, first)).json()["traits"]["Contact"]
    assert traits["firstName"] == "Aly"
    assert traits["lastName"] == "Mock"


@pytest.mark.parametrize(
    ("traits", "fragment"),
    [
        ({"Contact": {"firstName": "NoIdentifier"}}, "promoted to an identifier"),
        ({"Nope": {"x": 1}}, "traits.Nope"),
        ({"Contact": {"email": "a@b.c", "nickname": "x"}}, "traits.Contact.nickname"),
        ({"Contact": {"email": "a@b.c", "firstName": 7}}, "traits.Contact.firstName"),
        ({"Contact": {"email": "not-an-email"}}, "traits.Contact.email"),
        ({"Contact": {"phone": "12"}}, "traits.Contact.phone"),
        ({"Contact": {"email": "a@b.c", "city": None}}, "traits.Contact.city"),
        ({"Contact": "flat"}, "traits.Contact"),
    ],
)
def test_invalid_creates_are_400_naming_the_trait_and_write_nothing(
    api: Api, traits: dict[str, Any], fragment: str
) -> None:
    store_id = make_store(api)
    response = api.post(profiles_url(store_id), json={"traits": traits})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert fragment in response.json()["message"]
    assert api.get(profiles_url(store_id)).json()["profiles"] == []


def test_trait_types_and_validation_rules_are_enforced(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={
            "points": {"dataType": "NUMBER", "validationRule": {"ruleType": "NUMBER", "min": 0}},
            "vip": {"dataType": "BOOLEAN"},
            "tags": {"dataType": "ARRAY", "validationRule": {"ruleType": "ARRAY", "maxItems": 2}},
            "code": {
                "dataType": "STRING",
                "validationRule": {"ruleType": "STRING", "pattern": "^[A-Z]{3}$"},
            },
        },
    )
    good = {"points": 10.5, "vip": True, "tags": ["a", 1], "code": "ABC"}
    ok = api.post(
        profiles_url(store_id), json={"traits": {"Contact": {"email": "l@x.io"}, "Loyalty": good}}
    )
    assert ok.status_code == 202
    assert api.get(profiles_url(store_id, ok.json()["id"])).json()["traits"]["Loyalty"] == good
    for bad, fragment in [
        ({"points": -1}, "min"),
        ({"points": True}, "must be a number"),
        ({"vip": "yes"}, "must be a boolean"),
        ({"tags": ["a", "b", "c"]}, "maxItems"),
        ({"tags": [["nested"]]}, "array"),
        ({"code": "abc"}, "pattern"),
    ]:
        response = api.post(
            profiles_url(store_id),
            json={"traits": {"Contact": {"email": "m@x.io"}, "Loyalty": bad}},
        )
        assert response.status_code == 400, bad
        assert fragment in response.json()["message"], response.json()["message"]
        assert "Loyalty" in response.json()["message"]


def test_patch_changes_only_given_traits_and_null_removes(api: Api) -> None:
    store_id = make_store(api)
    profile_id = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    response = api.patch(
        profiles_url(store_id, profile_id),
        json={"traits": {"Contact": {"firstName": "Ally", "street": None}}},
    )
    assert response.status_code == 202
    assert response.json() == {"message": "Trait modifications accepted for processing."}
    contact = api.get(profiles_url(store_id, profile_id)).json()["traits"]["Contact"]
    assert contact["firstName"] == "Ally"
    assert "street" not in contact
    assert contact["lastName"] == "Mock"

    bad = api.patch(
        profiles_url(store_id, profile_id),
        json={"traits": {"Contact": {"firstName": 1, "city": "LA"}}},
    )
    assert bad.status_code == 400
    assert (
        api.get(profiles_url(store_id, profile_id)).json()["traits"]["Contact"]["city"]
        == "San Francisco"
    )


def test_patching_a_promoted_trait_adds_the_identifier(api: Api) -> None:
    store_id = make_store(api)
    profile_id = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    api.patch(
        profiles_url(store_id, profile_id),
        json={"traits": {"Contact": {"email": "new@example.com"}}},
    )
    emails = api.get(profiles_url(store_id, profile_id, "Identifiers", "email")).json()
    assert emails == {"idType": "email", "values": ["alyssa.mock@example.com", "new@example.com"]}
    found = api.post(
        profiles_url(store_id, "Lookup"), json={"idType": "email", "value": "NEW@example.com"}
    )
    assert found.json() == {"normalizedValue": "new@example.com", "profiles": [profile_id]}


def test_fetch_filters_trait_groups(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    profile_id = api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"email": "f@x.io"}, "Loyalty": {"tier": "gold"}}},
    ).json()["id"]
    only = api.get(profiles_url(store_id, profile_id), params={"traitGroups": "Loyalty"}).json()
    assert only["traits"] == {"Loyalty": {"tier": "gold"}}
    both = api.get(
        profiles_url(store_id, profile_id), params={"traitGroups": "Loyalty, Contact"}
    ).json()
    assert set(both["traits"]) == {"Loyalty", "Contact"}
    assert (
        api.get(profiles_url(store_id, profile_id), params={"traitGroups": ""}).status_code == 400
    )


def test_delete_profile(api: Api) -> None:
    store_id = make_store(api)
    profile_id = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    response = api.delete(profiles_url(store_id, profile_id))
    assert response.status_code == 202
    for path in ((), ("Traits",), ("Identifiers",)):
        gone = api.get(profiles_url(store_id, profile_id, *path))
        assert gone.status_code == 404
        assert gone.json()["code"] == 520009
    assert (
        api.post(
            profiles_url(store_id, "Lookup"), json={"idType": "phone", "value": "+13175551234"}
        ).json()["profiles"]
        == []
    )
    assert api.get(profiles_url(store_id)).json()["profiles"] == []
    # The same identifiers now create a new profile.
    assert api.post(profiles_url(store_id), json=ALYSSA).json()["id"] != profile_id


def test_list_profiles_newest_first_and_paginated(api: Api) -> None:
    store_id = make_store(api)
    created = [make_profile(api, store_id, email=f"p{n}@x.io") for n in range(5)]
    assert api.get(profiles_url(store_id)).json()["profiles"] == list(reversed(created))
    seen: list[str] = []
    params: dict[str, Any] = {"pageSize": 2, "orderBy": "ASC"}
    while True:
        body = api.get(profiles_url(store_id), params=params).json()
        seen += body["profiles"]
        if "nextToken" not in body["meta"]:
            break
        params["pageToken"] = body["meta"]["nextToken"]
    assert seen == created
    assert api.get(profiles_url(store_id), params={"pageSize": 1000}).status_code == 200
    assert api.get(profiles_url(store_id), params={"pageSize": 1001}).json()["code"] == 520046


def test_traits_endpoint_is_flat_with_timestamps_and_pages(api: Api) -> None:
    store_id = make_store(api)
    profile_id = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    body = api.get(profiles_url(store_id, profile_id, "Traits"), params={"orderBy": "ASC"}).json()
    names = [t["name"] for t in body["traits"]]
    assert names == sorted(ALYSSA["traits"]["Contact"])
    assert all(
        t["traitGroup"] == "Contact" and t["timestamp"].endswith("Z") for t in body["traits"]
    )
    first = api.get(
        profiles_url(store_id, profile_id, "Traits"), params={"pageSize": 4, "orderBy": "ASC"}
    ).json()
    assert len(first["traits"]) == 4 and first["meta"]["nextToken"]
    rest = api.get(
        profiles_url(store_id, profile_id, "Traits"),
        params={"pageSize": 4, "orderBy": "ASC", "pageToken": first["meta"]["nextToken"]},
    ).json()
    assert [t["name"] for t in first["traits"] + rest["traits"]] == names[:8]
    filtered = api.get(
        profiles_url(store_id, profile_id, "Traits"), params={"traitGroups": "Other"}
    ).json()
    assert filtered["traits"] == []


def test_bulk_upsert(api: Api) -> None:
    store_id = make_store(api)
    existing = make_profile(api, store_id, email="john.doe@example.com", firstName="Johnny")
    body = {
        "profiles": [
            {
                "traits": {
                    "Contact": {
                        "phone": "+13175551234",
                        "email": "Alyssa.Mock@example.com",
                        "firstName": "Alyssa",
                    }
                }
            },
            {
                "traits": {
                    "Contact": {
                        "phone": "+13175556789",
                        "email": "John.Doe@example.com",
                        "lastName": "Doe",
                    }
                }
            },
            # Same person as the first item: one profile, later values win.
            {"traits": {"Contact": {"email": "alyssa.mock@example.com", "firstName": "Ally"}}},
        ]
    }
    response = api.put(profiles_url(store_id, "Bulk"), json=body)
    assert response.status_code == 202, response.text
    assert response.json() == {"message": "Profile batch accepted for processing."}
    profiles = api.get(profiles_url(store_id)).json()["profiles"]
    assert len(profiles) == 2
    john = api.get(profiles_url(store_id, existing)).json()["traits"]["Contact"]
    assert john == {
        "email": "John.Doe@example.com",  # trait values are stored as given
        "firstName": "Johnny",
        "phone": "+13175556789",
        "lastName": "Doe",
    }
    alyssa_id = next(p for p in profiles if p != existing)
    assert (
        api.get(profiles_url(store_id, alyssa_id)).json()["traits"]["Contact"]["firstName"]
        == "Ally"
    )


def test_bulk_with_a_bad_item_names_its_index_and_writes_nothing(api: Api) -> None:
    store_id = make_store(api)
    items = [copy.deepcopy(ALYSSA) for _ in range(3)]
    items[0]["traits"]["Contact"]["email"] = "one@x.io"
    items[1]["traits"]["Contact"]["email"] = "two@x.io"
    items[2]["traits"]["Contact"]["firstName"] = 42
    response = api.put(profiles_url(store_id, "Bulk"), json={"profiles": items})
    assert response.status_code == 400
    assert "profiles[2]" in response.json()["message"]
    assert api.get(profiles_url(store_id)).json()["profiles"] == []
    for body in ({"profiles": []}, {"profiles": [ALYSSA] * 1001}, {}):
        bad = api.put(profiles_url(store_id, "Bulk"), json=body)
        assert bad.status_code == 400
        assert "profiles" in bad.json()["message"]


def test_malformed_and_unknown_profile_ids(api: Api, other_api: Api) -> None:
    store_id = make_store(api)
    bad = api.get(profiles_url(store_id, "mem_profile_xyz"))
    assert bad.status_code == 400 and "profileId" in bad.json()["message"]
    unknown = api.get(profiles_url(store_id, "mem_profile_01h455vb4pex5vsknk084sn02q"))
    assert unknown.status_code == 404 and unknown.json()["code"] == 520009
    profile_id = api.post(profiles_url(store_id), json=ALYSSA).json()["id"]
    assert other_api.get(profiles_url(store_id, profile_id)).json()["code"] == 520041
    assert api.get(f"{STORES}/{store_id}").status_code == 200


def test_a_write_waits_for_a_lock_held_elsewhere(api: Api, db: Any, settings: Any) -> None:
    """SQLite: when another connection (a job, another process) holds the write
    lock, a write request waits for it on a worker thread instead of failing."""
    if not db.is_sqlite:
        pytest.skip("SQLite's single-writer lock")
    import sqlite3
    import threading
    import time

    store_id = make_store(api)
    path = db.engine.url.database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "response",
            api.post(profiles_url(store_id), json={"traits": {"Contact": {"email": "w@x.io"}}}),
        )
    )
    thread.start()
    time.sleep(0.3)
    assert "response" not in result  # still waiting for the lock
    # Reads are not blocked meanwhile.
    assert api.get(profiles_url(store_id)).status_code == 200
    other.execute("COMMIT")
    other.close()
    thread.join(10)
    assert result["response"].status_code == 202
    assert api.get(profiles_url(store_id)).json()["profiles"] == [result["response"].json()["id"]]


def test_deleting_traits_or_groups_removes_their_values(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={"tier": {"dataType": "STRING"}, "points": {"dataType": "NUMBER"}},
    )
    body = {"traits": {"Contact": {"email": "del@x.io"}, "Loyalty": {"tier": "gold", "points": 5}}}
    pid = api.post(profiles_url(store_id), json=body).json()["id"]
    api.patch(
        f"{STORES}/{store_id}/TraitGroups/Loyalty", json={"traits": {"tier": {"dataType": ""}}}
    )
    assert api.get(profiles_url(store_id, pid)).json()["traits"]["Loyalty"] == {"points": 5}
    api.delete(f"{STORES}/{store_id}/TraitGroups/Loyalty")
    assert "Loyalty" not in api.get(profiles_url(store_id, pid)).json()["traits"]
    # A group created again under the same name starts empty.
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    assert "Loyalty" not in api.get(profiles_url(store_id, pid)).json()["traits"]


def test_a_write_that_changes_a_profile_bumps_its_updated_at_and_an_unchanged_one_does_not(
    api: Api, db: Database
) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="stamp@example.com", firstName="A")

    def updated_at() -> Any:
        with db.transaction(write=False) as session:
            return session.execute(
                select(Profile.updated_at).where(
                    Profile.store_id == store_id, Profile.id == profile_id
                )
            ).scalar_one()

    created = updated_at()
    assert make_profile(api, store_id, email="stamp@example.com", firstName="B") == profile_id
    changed = updated_at()
    assert changed > created
    # The same again: nothing changes, not even the stamp.
    assert make_profile(api, store_id, email="stamp@example.com", firstName="B") == profile_id
    assert updated_at() == changed
