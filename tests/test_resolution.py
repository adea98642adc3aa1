"""Identity resolution scenarios through HTTP: create, update, merge, redirects."""

from __future__ import annotations

import time

from sqlalchemy import select

from convmem.kit.db import Database
from convmem.profiles.models import ProfileMerge
from tests.conftest import Api
from tests.factories import make_profile, make_store, make_trait_group, profiles_url, race


def lookup(api: Api, store_id: str, id_type: str, value: str) -> list[str]:
    response = api.post(profiles_url(store_id, "Lookup"), json={"idType": id_type, "value": value})
    assert response.status_code == 200, response.text
    profiles: list[str] = response.json()["profiles"]
    return profiles


def test_no_match_creates_one_match_updates(api: Api) -> None:
    store_id = make_store(api)
    a = make_profile(api, store_id, email="a@x.io")
    b = make_profile(api, store_id, email="b@x.io")
    assert a != b
    assert make_profile(api, store_id, email="A@x.io", firstName="Ann") == a
    assert api.get(profiles_url(store_id, a)).json()["traits"]["Contact"]["firstName"] == "Ann"


def test_a_record_with_two_profiles_identifiers_merges_them_into_the_earlier(
    api: Api, db: Database
) -> None:
    store_id = make_store(api)
    earlier = make_profile(api, store_id, email="ann@x.io", firstName="Ann", city="Paris")
    time.sleep(0.01)
    later = make_profile(api, store_id, phone="+13175550001", firstName="Annie", state="CA")
    assert earlier < later
    merged = make_profile(api, store_id, email="ann@x.io", phone="+13175550001")
    assert merged == earlier

    assert api.get(profiles_url(store_id)).json()["profiles"] == [earlier]
    traits = api.get(profiles_url(store_id, earlier)).json()["traits"]["Contact"]
    # Newest timestamp wins per trait; traits only one side had are kept.
    assert traits["firstName"] == "Annie"
    assert traits["city"] == "Paris" and traits["state"] == "CA"
    ids = {
        s["idType"]: s["values"]
        for s in api.get(profiles_url(store_id, earlier, "Identifiers")).json()["identifiers"]
    }
    assert ids == {"email": ["ann@x.io"], "phone": ["+13175550001"]}
    # Lookup answers the canonical id only.
    assert lookup(api, store_id, "phone", "317-555-0001") == [earlier]
    assert lookup(api, store_id, "email", "ann@x.io") == [earlier]

    with db.transaction(write=False) as session:
        merges = session.scalars(
            select(ProfileMerge).where(ProfileMerge.store_id == store_id)
        ).all()
    assert [(m.canonical_id, m.merged_id, m.rule) for m in merges] == [(earlier, later, "phone")]


def test_merged_away_id_redirects(api: Api) -> None:
    store_id = make_store(api)
    earlier = make_profile(api, store_id, email="r@x.io")
    later = make_profile(api, store_id, phone="+13175550002")
    make_profile(api, store_id, email="r@x.io", phone="+13175550002")

    for path in ((), ("Traits",), ("Identifiers",), ("Identifiers", "email")):
        response = api.get(
            profiles_url(store_id, later, *path),
            params={"traitGroups": "Contact"} if not path else None,
            follow_redirects=False,
        )
        assert response.status_code == 301, path
        expected = profiles_url(store_id, earlier, *path)
        assert response.headers["Location"].split("?")[0].endswith(expected)
        assert response.headers["Canonical-Profile-Id"] == earlier
        assert response.json() == {
            "message": "This resource has moved.",
            "uri": response.headers["Location"],
        }
    assert (
        api.get(
            profiles_url(store_id, later), params={"traitGroups": "Contact"}, follow_redirects=False
        )
        .headers["Location"]
        .endswith("?traitGroups=Contact")
    )

    writes = [
        api.patch(
            profiles_url(store_id, later),
            json={"traits": {"Contact": {"city": "X"}}},
            follow_redirects=False,
        ),
        api.delete(profiles_url(store_id, later), follow_redirects=False),
        api.post(
            profiles_url(store_id, later, "Identifiers"),
            json={"idType": "chat", "value": "c1"},
            follow_redirects=False,
        ),
    ]
    for response in writes:
        assert response.status_code == 308
        assert response.headers["Canonical-Profile-Id"] == earlier
        assert response.json()["message"] == "This resource has moved."
    # Following the redirect reaches the canonical profile.
    assert api.get(profiles_url(store_id, later), follow_redirects=True).json()["id"] == earlier
    assert "city" not in api.get(profiles_url(store_id, earlier)).json()["traits"]["Contact"]


def test_chained_merges_redirect_in_one_hop(api: Api) -> None:
    store_id = make_store(api)
    p1 = make_profile(api, store_id, email="c1@x.io")
    p2 = make_profile(api, store_id, phone="+13175550003")
    p3 = make_profile(api, store_id, email="c3@x.io")
    make_profile(api, store_id, phone="+13175550003", email="c3@x.io")  # p3 -> p2
    make_profile(api, store_id, phone="+13175550003", email="c1@x.io")  # p2 -> p1
    for alias in (p2, p3):
        response = api.get(profiles_url(store_id, alias), follow_redirects=False)
        assert response.headers["Canonical-Profile-Id"] == p1


def test_patch_that_adds_another_profiles_identifier_merges(api: Api) -> None:
    store_id = make_store(api)
    first = make_profile(api, store_id, email="m1@x.io")
    second = make_profile(api, store_id, email="m2@x.io", firstName="Second")
    response = api.patch(
        profiles_url(store_id, second), json={"traits": {"Contact": {"email": "m1@x.io"}}}
    )
    assert response.status_code == 202
    assert api.get(profiles_url(store_id)).json()["profiles"] == [first]
    merged = api.get(profiles_url(store_id, first)).json()["traits"]["Contact"]
    assert merged["firstName"] == "Second" and merged["email"] == "m1@x.io"
    emails = api.get(profiles_url(store_id, first, "Identifiers", "email")).json()["values"]
    assert sorted(emails) == ["m1@x.io", "m2@x.io"]


def test_merge_moves_traits_of_every_group(api: Api) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    first = make_profile(api, store_id, email="g1@x.io")
    api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"phone": "+13175550004"}, "Loyalty": {"tier": "gold"}}},
    )
    make_profile(api, store_id, email="g1@x.io", phone="+13175550004")
    assert api.get(profiles_url(store_id, first)).json()["traits"]["Loyalty"] == {"tier": "gold"}


def test_twenty_concurrent_creates_with_one_email_make_one_profile(api: Api) -> None:
    store_id = make_store(api)
    responses = race(
        20,
        lambda n: api.post(
            profiles_url(store_id),
            json={"traits": {"Contact": {"email": "race@x.io", "firstName": f"n{n}"}}},
        ),
    )
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert api.get(profiles_url(store_id)).json()["profiles"] == list(ids)
    assert lookup(api, store_id, "email", "race@x.io") == list(ids)


def test_concurrent_creates_that_bridge_two_profiles_end_merged(api: Api) -> None:
    store_id = make_store(api)

    def create(n: int) -> int:
        contact = {"email": "bridge@x.io"} if n % 2 else {"phone": "+13175550005"}
        if n == 9:
            contact = {"email": "bridge@x.io", "phone": "+13175550005"}
        return api.post(profiles_url(store_id), json={"traits": {"Contact": contact}}).status_code

    assert race(10, create) == [202] * 10
    profiles = api.get(profiles_url(store_id)).json()["profiles"]
    assert len(profiles) == 1
    assert lookup(api, store_id, "email", "bridge@x.io") == profiles
    assert lookup(api, store_id, "phone", "+13175550005") == profiles
