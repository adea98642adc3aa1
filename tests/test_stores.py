from __future__ import annotations

from convmem import wiring
from convmem.kit.db import Database
from convmem.operations.worker import Worker
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import STORES, make_store, operation_of, race


def test_create_store_answers_202_with_operation_headers(api: Api) -> None:
    response = api.post(STORES, json={"displayName": "sandbox", "description": "Testing"})
    assert response.status_code == 202
    body = response.json()
    assert body["message"]
    op_id = response.headers["Operation-Id"]
    assert op_id.startswith("mem_operation_")
    assert response.headers["Location"] == body["statusUrl"]
    assert body["statusUrl"].endswith(f"/v1/ControlPlane/Operations/{op_id}")
    assert response.headers["Retry-After"] == "0"

    op = operation_of(api, response)
    assert op["status"] == "COMPLETED"
    assert op["result"]["type"] == "RESOURCE_ID"
    store_id = op["result"]["id"]
    assert op["resultUrl"].endswith(f"/v1/ControlPlane/Stores/{store_id}")

    store = api.get(f"{STORES}/{store_id}")
    assert store.status_code == 200
    assert store.json() == {
        "id": store_id,
        "displayName": "sandbox",
        "description": "Testing",
        "status": "ACTIVE",
        "intelligenceServiceId": None,
        "version": 1,
    }
    assert store.headers["ETag"].startswith('"')


def test_new_store_has_default_contact_group_and_settings(api: Api) -> None:
    store_id = make_store(api)
    groups = api.get(f"{STORES}/{store_id}/TraitGroups", params={"includeTraits": "true"}).json()
    assert [g["displayName"] for g in groups["traitGroups"]] == ["Contact"]
    traits = groups["traitGroups"][0]["traits"]
    assert traits["email"]["idTypePromotion"] == "email"
    assert traits["phone"]["idTypePromotion"] == "phone"
    for name in ("firstName", "lastName", "street", "city", "state", "postalCode", "country"):
        assert traits[name]["dataType"] == "STRING"

    settings = api.get(f"{STORES}/{store_id}/IdentityResolutionSettings").json()
    assert [c["idType"] for c in settings["identifierConfigs"]] == [
        "email",
        "phone",
        "whatsapp",
        "chat",
    ]
    assert [c["normalization"] for c in settings["identifierConfigs"]] == [
        "email",
        "phone",
        "trim",
        "trim",
    ]
    assert settings["matchingRules"] == ["email", "phone", "whatsapp", "chat"]


def test_display_name_must_be_unique_per_account(api: Api, other_api: Api) -> None:
    make_store(api, name="shared-name")
    again = api.post(STORES, json={"displayName": "shared-name"})
    assert again.status_code == 409
    assert again.json()["code"] == 520045
    # Another account may use the same name.
    make_store(other_api, name="shared-name")


def test_store_limit_per_account(api: Api, settings: Settings) -> None:
    for n in range(settings.max_stores_per_account):
        make_store(api, name=f"s{n}")
    over = api.post(STORES, json={"displayName": "one-too-many"})
    assert over.status_code == 400
    assert over.json()["code"] == 520044
    assert api.get(STORES, params={"pageSize": 100}).json()["meta"]["pageSize"] == 15


def test_create_store_validation_errors_name_the_field(api: Api) -> None:
    cases = [
        ({"displayName": "has spaces"}, "displayName"),
        ({"displayName": "x" * 65}, "displayName"),
        ({}, "displayName"),
        ({"displayName": "ok", "description": ""}, "description"),
        ({"displayName": "ok", "description": "d" * 129}, "description"),
    ]
    for body, field in cases:
        response = api.post(STORES, json=body)
        assert response.status_code == 400, body
        error = response.json()
        assert error["code"] == 520046
        assert field in error["message"]
    broken = api.post(STORES, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["code"] == 520046
    assert "JSON" in broken.json()["message"]
    assert api.get(STORES).json()["stores"] == []


def test_stores_are_invisible_to_other_accounts(api: Api, other_api: Api) -> None:
    store_id = make_store(api)
    for method in ("GET", "PATCH", "DELETE"):
        response = other_api.request(method, f"{STORES}/{store_id}", json={})
        assert response.status_code == 404, method
        assert response.json()["code"] == 520041
    assert other_api.get(STORES).json()["stores"] == []
    assert other_api.get(f"{STORES}/{store_id}/TraitGroups").json()["code"] == 520041


def test_malformed_store_ids_are_rejected(api: Api) -> None:
    for bad in (
        "mem_store_123",
        "mem_profile_01h455vb4pex5vsknk084sn02q",
        "mem_store_81h455vb4pex5vsknk084sn02q",  # first char beyond 7 overflows 128 bits
        "MEM_STORE_01H455VB4PEX5VSKNK084SN02Q",
    ):
        response = api.get(f"{STORES}/{bad}")
        assert response.status_code == 400, bad
        assert response.json()["code"] == 520049
    # The spec's pattern admits i, l, o and u (not Crockford base32): well-formed, unknown.
    for unknown_id in (
        "mem_store_01h455vb4pex5vsknk084sn02q",
        "mem_store_01h455vb4pex5vsknk084sn02l",
    ):
        unknown = api.get(f"{STORES}/{unknown_id}")
        assert unknown.status_code == 404
        assert unknown.json()["code"] == 520041
    # mem_service_ ids are accepted as store ids.
    service = api.get(f"{STORES}/mem_service_01h455vb4pex5vsknk084sn02q")
    assert service.json()["code"] == 520041


def test_patch_store_bumps_version_and_honours_if_match(api: Api) -> None:
    store_id = make_store(api, name="before")
    first = api.get(f"{STORES}/{store_id}")
    etag = first.headers["ETag"]

    patched = api.patch(
        f"{STORES}/{store_id}",
        json={"displayName": "after", "description": "new"},
        headers={"If-Match": etag},
    )
    assert patched.status_code == 202
    assert operation_of(api, patched)["status"] == "COMPLETED"
    after = api.get(f"{STORES}/{store_id}")
    assert after.json()["displayName"] == "after"
    assert after.json()["description"] == "new"
    assert after.json()["version"] == 2
    assert after.headers["ETag"] != etag

    stale = api.patch(f"{STORES}/{store_id}", json={"description": "x"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["code"] == 520043
    garbage = api.patch(f"{STORES}/{store_id}", json={}, headers={"If-Match": '"nonsense"'})
    assert garbage.status_code == 412
    assert api.get(f"{STORES}/{store_id}").json()["version"] == 2

    # Without If-Match the update applies; `null` (as the SDK sends) means unchanged.
    unconditional = api.patch(
        f"{STORES}/{store_id}", json={"displayName": None, "description": "z"}
    )
    assert unconditional.status_code == 202
    assert api.get(f"{STORES}/{store_id}").json() | {"version": 0} == {
        "id": store_id,
        "displayName": "after",
        "description": "z",
        "status": "ACTIVE",
        "intelligenceServiceId": None,
        "version": 0,
    }


def test_patch_to_a_taken_name_conflicts(api: Api) -> None:
    make_store(api, name="taken")
    store_id = make_store(api, name="mine")
    response = api.patch(f"{STORES}/{store_id}", json={"displayName": "taken"})
    assert response.status_code == 409
    assert response.json()["code"] == 520045
    # Renaming to its own name is fine.
    assert api.patch(f"{STORES}/{store_id}", json={"displayName": "mine"}).status_code == 202


def test_concurrent_patches_with_the_same_if_match_exactly_one_wins(api: Api) -> None:
    store_id = make_store(api)
    etag = api.get(f"{STORES}/{store_id}").headers["ETag"]
    statuses = race(
        2,
        lambda n: (
            api.patch(
                f"{STORES}/{store_id}",
                json={"description": f"writer {n}"},
                headers={"If-Match": etag},
            ).status_code
        ),
    )
    assert sorted(statuses) == [202, 412]
    assert api.get(f"{STORES}/{store_id}").json()["version"] == 2


def test_delete_store_hides_it_at_once_and_a_job_purges_its_data(
    api: Api, db: Database, settings: Settings
) -> None:
    store_id = make_store(api, name="doomed")
    response = api.delete(f"{STORES}/{store_id}")
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "1"

    assert api.get(f"{STORES}/{store_id}").json()["code"] == 520041
    assert store_id not in api.get(STORES).json()["stores"]
    assert api.delete(f"{STORES}/{store_id}").json()["code"] == 520041
    # The name is free again right away.
    make_store(api, name="doomed")

    op = operation_of(api, response)
    assert op["status"] in ("PENDING", "RUNNING", "COMPLETED")
    worker = Worker(db, settings, wiring.jobs(settings))
    while worker.run_once():
        pass
    op = operation_of(api, response)
    assert op["status"] == "COMPLETED", op
    assert op["result"] == {"type": "RESOURCE_ID", "id": store_id}

    from sqlalchemy import text

    from convmem.stores.repository import store_scoped_tables

    with db.transaction(write=False) as session:
        for table in store_scoped_tables():
            left = session.execute(
                text(f"SELECT count(*) FROM {table.name} WHERE store_id = :s"), {"s": store_id}
            ).scalar()
            assert left == 0, table.name
        assert (
            session.execute(
                text("SELECT count(*) FROM stores WHERE id = :s"), {"s": store_id}
            ).scalar()
            == 0
        )
