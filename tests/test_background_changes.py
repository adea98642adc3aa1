"""Changes that touch every profile of a store run as background operations:
deleting traits or groups, and identity settings that change how identifiers
are stored. Reads are consistent from the request on; the job only catches the
stored rows up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from convmem.kit.db import Database
from convmem.profiles import trait_values
from convmem.profiles.models import ProfileIdentifier, ProfileTraitGroup
from tests.conftest import Api
from tests.factories import (
    STORES,
    finish,
    make_profile,
    make_store,
    make_trait_group,
    operation_of,
    profiles_url,
)
from tests.test_worker_crash import job_cluster, op_row


def stored_values(db: Database, store_id: str, group: str) -> int:
    """Trait values of `group` stored in the store, live or not."""
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(
                ProfileTraitGroup.profile_id, ProfileTraitGroup.group_name, ProfileTraitGroup.traits
            ).where(ProfileTraitGroup.store_id == store_id, ProfileTraitGroup.group_name == group)
        )
        return len(trait_values.expand(rows))


def loyalty_profile(api: Api, store_id: str, email: str, **loyalty: Any) -> str:
    body = {"traits": {"Contact": {"email": email}, "Loyalty": loyalty}}
    response = api.post(profiles_url(store_id), json=body)
    assert response.status_code == 202, response.text
    profile_id: str = response.json()["id"]
    return profile_id


def test_deleted_traits_vanish_at_once_and_are_purged_in_the_background(
    api: Api, db: Database
) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={"tier": {"dataType": "STRING"}, "points": {"dataType": "NUMBER"}},
    )
    ids = [loyalty_profile(api, store_id, f"p{n}@x.io", tier="gold", points=n) for n in range(30)]
    assert stored_values(db, store_id, "Loyalty") == 60
    groups_url = f"{STORES}/{store_id}/TraitGroups/Loyalty"
    response = api.patch(groups_url, json={"traits": {"tier": {"dataType": ""}}})
    assert operation_of(api, response)["status"] == "PENDING"
    # Gone from every read before any job ran.
    fetched = api.get(profiles_url(store_id, ids[3])).json()
    assert fetched["traits"]["Loyalty"] == {"points": 3}
    listed = api.get(profiles_url(store_id, ids[3], "Traits")).json()["traits"]
    assert {t["name"] for t in listed} == {"email", "points"}
    assert stored_values(db, store_id, "Loyalty") == 60

    op = finish(api, db, response)
    assert op["status"] == "COMPLETED"
    assert op["result"] == {"type": "RESOURCE_ID", "id": "Loyalty"}
    assert stored_values(db, store_id, "Loyalty") == 30
    assert api.get(profiles_url(store_id, ids[3])).json()["traits"]["Loyalty"] == {"points": 3}

    deleted = api.delete(groups_url)
    assert "Loyalty" not in api.get(profiles_url(store_id, ids[0])).json()["traits"]
    assert finish(api, db, deleted)["status"] == "COMPLETED"
    assert stored_values(db, store_id, "Loyalty") == 0


def test_a_trait_created_again_starts_empty_and_keeps_new_values(api: Api, db: Database) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    old = loyalty_profile(api, store_id, "old@x.io", tier="gold")
    deleted = api.delete(f"{STORES}/{store_id}/TraitGroups/Loyalty")
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    # The old value is not resurrected by the new definition...
    assert "Loyalty" not in api.get(profiles_url(store_id, old)).json()["traits"]
    new = loyalty_profile(api, store_id, "new@x.io", tier="silver")
    # ...and the purge, which runs after the new definition exists, keeps new values.
    assert finish(api, db, deleted)["status"] == "COMPLETED"
    assert api.get(profiles_url(store_id, new)).json()["traits"]["Loyalty"] == {"tier": "silver"}
    assert "Loyalty" not in api.get(profiles_url(store_id, old)).json()["traits"]
    assert stored_values(db, store_id, "Loyalty") == 1


def test_merges_do_not_carry_values_of_deleted_traits(api: Api, db: Database) -> None:
    store_id = make_store(api)
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    first = loyalty_profile(api, store_id, "a@x.io", tier="gold")
    second = make_profile(api, store_id, phone="+14155550123")
    api.delete(f"{STORES}/{store_id}/TraitGroups/Loyalty")
    make_trait_group(api, store_id, name="Loyalty", traits={"tier": {"dataType": "STRING"}})
    merged = api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"email": "a@x.io", "phone": "+14155550123"}}},
    )
    assert merged.json()["id"] == min(first, second)
    assert "Loyalty" not in api.get(profiles_url(store_id, min(first, second))).json()["traits"]


def unique_values(db: Database, store_id: str, id_type: str) -> list[str | None]:
    """Per stored identifier: its value when it is claimed store-wide (scope ""),
    None when it is held per profile (scope = its profile's id)."""
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(
                ProfileIdentifier.value, ProfileIdentifier.scope, ProfileIdentifier.profile_id
            ).where(ProfileIdentifier.store_id == store_id, ProfileIdentifier.id_type == id_type)
        ).all()
    assert all(scope in ("", profile_id) for _, scope, profile_id in rows)
    return [value if scope == "" else None for value, scope, _ in rows]


def put_config(api: Api, store_id: str, id_type: str, **changes: Any) -> Any:
    url = f"{STORES}/{store_id}/IdentityResolutionSettings"
    settings = api.get(url).json()
    for config in settings["identifierConfigs"]:
        if config["idType"] == id_type:
            config.update(changes)
    return api.put(url, json=settings)


def test_identity_settings_reindex_identifiers_in_the_background(api: Api, db: Database) -> None:
    store_id = make_store(api)
    for n in range(20):
        make_profile(api, store_id, email=f"u{n}@x.io", phone=f"+1415555{n:04d}")
    # Settings that do not change how identifiers are stored complete at once.
    done = put_config(api, store_id, "chat", limit=5)
    assert operation_of(api, done)["status"] == "COMPLETED"

    response = put_config(api, store_id, "phone", enforceUnique=False)
    assert operation_of(api, response)["status"] == "PENDING"
    assert finish(api, db, response)["status"] == "COMPLETED"
    assert unique_values(db, store_id, "phone") == [None] * 20

    back = put_config(api, store_id, "phone", enforceUnique=True)
    assert finish(api, db, back)["status"] == "COMPLETED"
    assert sorted(v or "" for v in unique_values(db, store_id, "phone")) == sorted(
        f"+1415555{n:04d}" for n in range(20)
    )


def test_a_value_shared_by_profiles_cannot_become_unique(api: Api, db: Database) -> None:
    store_id = make_store(api)
    put_config(api, store_id, "chat", enforceUnique=False)
    settings_url = f"{STORES}/{store_id}/IdentityResolutionSettings"
    settings = api.get(settings_url).json()
    settings["matchingRules"] = [r for r in settings["matchingRules"] if r != "chat"]
    assert api.put(settings_url, json=settings).status_code == 202
    for n in range(2):
        pid = make_profile(api, store_id, email=f"s{n}@x.io")
        api.post(
            profiles_url(store_id, pid, "Identifiers"), json={"idType": "chat", "value": "shared"}
        )
    refused = put_config(api, store_id, "chat", enforceUnique=True)
    assert refused.status_code == 409
    assert "shared" in refused.json()["message"]
    assert api.get(settings_url).json()["identifierConfigs"][3]["enforceUnique"] is False


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_killed_worker_purge_resumes_and_removes_each_value_once(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with job_cluster(backend_name, tmp_path, request) as cluster:
        client, db = cluster.client, cluster.db
        store_id = cluster.new_store(f"purge-{backend_name}")
        client.post(
            f"{STORES}/{store_id}/TraitGroups",
            json={"displayName": "Gone", "traits": {"t": {"dataType": "STRING"}}},
        )
        profiles = 3000
        for start in range(0, profiles, 1000):
            items = [
                {"traits": {"Contact": {"email": f"k{n}@x.io"}, "Gone": {"t": f"v{n}"}}}
                for n in range(start, start + 1000)
            ]
            bulk = client.put(f"/v1/Stores/{store_id}/Profiles/Bulk", json={"profiles": items})
            assert bulk.status_code == 202, bulk.text
        assert stored_values(db, store_id, "Gone") == profiles

        op_id = client.delete(f"{STORES}/{store_id}/TraitGroups/Gone").headers["Operation-Id"]
        first = cluster.start_worker()
        cluster.wait(op_id, lambda op: (op.checkpoint or {}).get("deleted", 0) >= 400, 60)
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the job finished before the worker was killed"
        at_kill = killed.checkpoint["deleted"]  # type: ignore[index]
        assert 0 < at_kill < profiles
        assert stored_values(db, store_id, "Gone") == profiles - at_kill

        cluster.start_worker()
        final = cluster.wait(op_id, lambda op: op.status == "COMPLETED", 120)
        assert final.attempts == 2
        assert final.checkpoint is not None
        assert final.checkpoint["deleted"] == profiles  # each value removed exactly once
        assert stored_values(db, store_id, "Gone") == 0
        assert stored_values(db, store_id, "Contact") == profiles


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_killed_worker_reindex_resumes_and_updates_each_identifier_once(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with job_cluster(backend_name, tmp_path, request) as cluster:
        client, db = cluster.client, cluster.db
        store_id = cluster.new_store(f"reindex-{backend_name}")
        profiles = 3000
        for start in range(0, profiles, 1000):
            items = [
                {"traits": {"Contact": {"phone": f"+1415{n:07d}"}}}
                for n in range(start, start + 1000)
            ]
            bulk = client.put(f"/v1/Stores/{store_id}/Profiles/Bulk", json={"profiles": items})
            assert bulk.status_code == 202, bulk.text
        url = f"{STORES}/{store_id}/IdentityResolutionSettings"
        settings = client.get(url).json()
        for config in settings["identifierConfigs"]:
            if config["idType"] == "phone":
                config["enforceUnique"] = False
        op_id = client.put(url, json=settings).headers["Operation-Id"]

        first = cluster.start_worker()
        cluster.wait(op_id, lambda op: (op.checkpoint or {}).get("updated", 0) >= 300, 60)
        first.kill()
        killed = op_row(db, op_id)
        assert killed.status == "RUNNING", "the job finished before the worker was killed"
        at_kill = killed.checkpoint["updated"]  # type: ignore[index]
        assert 0 < at_kill < profiles
        assert unique_values(db, store_id, "phone").count(None) == at_kill

        cluster.start_worker()
        final = cluster.wait(op_id, lambda op: op.status == "COMPLETED", 120)
        assert final.attempts == 2
        assert final.checkpoint is not None
        assert final.checkpoint["updated"] == profiles  # each identifier rewritten once
        assert unique_values(db, store_id, "phone") == [None] * profiles
