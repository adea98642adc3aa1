"""The DataMapping API over HTTP on both backends, responses validated against
the spec: the documented requests verbatim, every validation error, If-Match,
listing with filters, and the references that block deletions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import STORES, make_store, make_trait_group, operation_of
from tests.mapping_helpers import (
    DATASETS,
    dataset_mapping,
    make_dataset,
    make_mapping,
    mappings_url,
    write_csv,
)

CRM_ROWS = [
    {"primary_email": "ada@example.com", "first": "Ada", "score": "7", "vip": "true"},
    {"primary_email": "bob@example.com", "first": "Bob", "score": "3", "vip": "false"},
]


def crm_dataset(api: Api, settings: Settings, **kw: Any) -> dict[str, Any]:
    location = write_csv(settings, CRM_ROWS)
    return make_dataset(api, {"type": "CSV", "location": location}, **kw)


def documented(dataset_id: str, item: dict[str, str]) -> dict[str, Any]:
    return {
        "displayName": "crm-contacts",
        "mappingTo": {"type": "TRAITS", "mappings": [item]},
        "mappingFrom": {"type": "DATASET", "datasetId": dataset_id},
    }


def test_documented_requests_work_as_written(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    body = documented(
        dataset["id"],
        {"fieldName": "primary_email", "traitGroup": "Contact", "traitName": "email"},
    )
    response = api.post(mappings_url(store_id), json=body)
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"message", "statusUrl"}
    assert response.headers["Operation-Id"].startswith("mem_operation_")
    op = operation_of(api, response)
    assert op["status"] == "COMPLETED"
    mapping_id = op["result"]["id"]
    assert mapping_id.startswith("mem_datamapping_")

    fetched = api.get(mappings_url(store_id, mapping_id))
    assert fetched.status_code == 200, fetched.text
    mapping = fetched.json()
    assert mapping["displayName"] == "crm-contacts"
    assert mapping["isEnabled"] is True
    assert mapping["version"] == 1
    # Items are answered in the spec's shape (`expression`), and DATASET as the dataset's kind.
    assert mapping["mappingTo"] == {
        "type": "TRAITS",
        "mappings": [
            {"expression": "primary_email", "traitGroup": "Contact", "traitName": "email"}
        ],
    }
    assert mapping["mappingFrom"] == {"type": "DATASET_WAREHOUSE", "datasetId": dataset["id"]}
    assert fetched.headers["ETag"]

    # The same with both expression and fieldName: expression names the field.
    both = documented(
        dataset["id"],
        {
            "fieldName": "first",
            "expression": "primary_email",
            "traitGroup": "Contact",
            "traitName": "email",
        },
    )
    both["displayName"] = "crm-contacts-2"
    second = make_mapping(api, store_id, both)
    items = api.get(mappings_url(store_id, second)).json()["mappingTo"]["mappings"]
    assert items[0]["expression"] == "primary_email"

    listed = api.get(mappings_url(store_id), params={"orderBy": "DESC", "type": "DATASET"})
    assert listed.status_code == 200, listed.text
    assert [m["id"] for m in listed.json()["dataMappings"]] == [second, mapping_id]
    assert listed.json()["meta"]["key"] == "dataMappings"

    patched = api.patch(mappings_url(store_id, second), json={"displayName": "crm-contacts-3"})
    assert operation_of(api, patched)["status"] == "COMPLETED"
    after = api.get(mappings_url(store_id, second)).json()
    assert after["displayName"] == "crm-contacts-3"
    assert after["version"] == 2

    deleted = api.delete(mappings_url(store_id, mapping_id))
    assert operation_of(api, deleted)["status"] == "COMPLETED"
    gone = api.get(mappings_url(store_id, mapping_id))
    assert gone.status_code == 404
    assert gone.json()["code"] == 520048


def test_ingress_mapping_and_type_filter(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    ingress = make_mapping(
        api,
        store_id,
        {
            "displayName": "web-signups",
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [{"expression": "mail", "traitGroup": "Contact", "traitName": "email"}],
            },
            "mappingFrom": {"type": "INGRESS", "columns": ["mail", "name"]},
        },
    )
    dataset = crm_dataset(api, settings, kind="DATASET_CLOUDAPP")
    cloud = make_mapping(
        api, store_id, dataset_mapping(dataset, [("primary_email", "Contact", "email")])
    )
    by_type = {
        t: [
            m["id"]
            for m in api.get(mappings_url(store_id), params={"type": t}).json()["dataMappings"]
        ]
        for t in ("INGRESS", "DATASET", "dataset_cloudapp", "DATASET_WAREHOUSE")
    }
    assert by_type == {
        "INGRESS": [ingress],
        "DATASET": [cloud],
        "dataset_cloudapp": [cloud],
        "DATASET_WAREHOUSE": [],
    }
    assert api.get(mappings_url(store_id, ingress)).json()["mappingFrom"] == {
        "type": "INGRESS",
        "columns": ["mail", "name"],
    }
    assert api.get(mappings_url(store_id), params={"type": "NOPE"}).status_code == 400
    asc = api.get(mappings_url(store_id), params={"orderBy": "ASC", "pageSize": 1}).json()
    assert [m["id"] for m in asc["dataMappings"]] == [ingress]
    nxt = api.get(
        mappings_url(store_id), params={"pageToken": asc["meta"]["nextToken"], "pageSize": 1}
    ).json()
    assert [m["id"] for m in nxt["dataMappings"]] == [cloud]


def _mapping(dataset_id: str, *items: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    return dataset_mapping({"id": dataset_id}, list(items), **extra)


@pytest.mark.parametrize(
    ("items", "status", "code", "words"),
    [
        ([("primary_email", "Nope", "email")], 404, 520047, "no trait group 'Nope'"),
        ([("primary_email", "Contact", "nope")], 400, 520046, "has no trait 'nope'"),
        ([("missing", "Contact", "email")], 400, 520046, "the dataset has no field 'missing'"),
        (
            [("primary_email", "Contact", "email"), ("first", "Contact", "email")],
            400,
            520046,
            "mapped twice",
        ),
        ([("first", "Contact", "firstName")], 400, 520046, "promoted to an identifier"),
        (
            [("primary_email", "Contact", "email"), ("first", "Loyalty", "vip")],
            400,
            520046,
            "field 'first' is STRING, which a BOOLEAN trait",
        ),
        (
            [("primary_email", "Contact", "email"), ("score", "Loyalty", "vip")],
            400,
            520046,
            "field 'score' is INTEGER, which a BOOLEAN trait",
        ),
    ],
)
def test_create_validation(
    api: Api,
    settings: Settings,
    items: list[tuple[str, str, str]],
    status: int,
    code: int,
    words: str,
) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Loyalty",
        traits={"vip": {"dataType": "BOOLEAN"}, "points": {"dataType": "NUMBER"}},
    )
    dataset = crm_dataset(api, settings)
    response = api.post(mappings_url(store_id), json=_mapping(dataset["id"], *items))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert words in response.json()["message"]
    # Lossless pairs are accepted: INTEGER into NUMBER, BOOLEAN into BOOLEAN, numbers into STRING.
    ok = _mapping(
        dataset["id"],
        ("primary_email", "Contact", "email"),
        ("score", "Loyalty", "points"),
        ("vip", "Loyalty", "vip"),
    )
    assert api.post(mappings_url(store_id), json=ok).status_code == 202


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"displayName": "9starts-with-digit"}, "displayName"),
        ({"displayName": "x" * 65}, "displayName"),
        ({"description": ""}, "description"),
        ({"mappingTo": {"type": "TRAITS", "mappings": []}}, "mappings"),
        ({"mappingFrom": {"type": "INGRESS"}}, "columns"),
        ({"mappingFrom": {"type": "INGRESS", "columns": ["a", "a"]}}, "twice"),
        ({"mappingFrom": {"type": "INGRESS", "columns": ["mail"]}}, "not one of mappingFrom"),
        ({"mappingFrom": {"type": "DATASET_WAREHOUSE"}}, "datasetId"),
        ({"mappingFrom": {"type": "DATASET", "datasetId": "tdi_dataset_x"}}, "datasetId"),
        ({"mappingFrom": {"type": "WEBHOOK", "datasetId": "x"}}, "type"),
        ({"unknownField": 1}, "unknown field"),
        ({"sync": {"cursorField": "nope"}}, "sync.cursorField"),
        ({"sync": {"intervalMinutes": 0}}, "intervalMinutes"),
        ({"sync": {"cursorField": "first"}}, "sync.keyField"),
    ],
)
def test_create_refuses_bad_bodies(
    api: Api, settings: Settings, change: dict[str, Any], words: str
) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    body = _mapping(dataset["id"], ("primary_email", "Contact", "email"))
    body.update(copy.deepcopy(change))
    if "INGRESS" in str(change) and "columns" in str(change):
        body["mappingTo"]["mappings"][0]["expression"] = "primary_email"
    response = api.post(mappings_url(store_id), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert words in response.json()["message"]
    assert api.get(mappings_url(store_id)).json()["dataMappings"] == []


def test_unknown_things(api: Api, other_api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    unknown = "mem_datamapping_01h455vb4pex5vsknk084sn02q"
    assert api.get(mappings_url(store_id, unknown)).json()["code"] == 520048
    assert api.patch(mappings_url(store_id, unknown), json={}).json()["code"] == 520048
    assert api.delete(mappings_url(store_id, unknown)).json()["code"] == 520048
    malformed = api.get(mappings_url(store_id, "mem_datamapping_nope"))
    assert malformed.status_code == 400
    missing = _mapping("tdi_dataset_01h455vb4pex5vsknk084sn02q", ("e", "Contact", "email"))
    response = api.post(mappings_url(store_id), json=missing)
    assert response.status_code == 404
    assert response.json()["code"] == 520058
    # Another account's dataset is unknown too; so is another account's store.
    other_store = make_store(other_api)
    theirs = other_api.post(
        mappings_url(other_store),
        json=_mapping(dataset["id"], ("primary_email", "Contact", "email")),
    )
    assert theirs.status_code == 404
    assert theirs.json()["code"] == 520058
    assert other_api.get(mappings_url(store_id)).json()["code"] == 520041


def test_names_are_unique_per_store(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    body = _mapping(dataset["id"], ("primary_email", "Contact", "email"))
    first = make_mapping(api, store_id, body)
    again = api.post(mappings_url(store_id), json=body)
    assert again.status_code == 409
    assert again.json()["code"] == 520056
    other = _mapping(dataset["id"], ("primary_email", "Contact", "email"))
    second = make_mapping(api, store_id, other)
    renamed = api.patch(mappings_url(store_id, second), json={"displayName": body["displayName"]})
    assert renamed.status_code == 409
    assert renamed.json()["code"] == 520056
    # Another store may use the name.
    assert make_mapping(api, make_store(api), body) != first


def test_patch_replaces_mappings_with_if_match(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    mapping_id = make_mapping(
        api,
        store_id,
        _mapping(
            dataset["id"], ("primary_email", "Contact", "email"), ("first", "Contact", "firstName")
        ),
    )
    etag = api.get(mappings_url(store_id, mapping_id)).headers["ETag"]
    new_items = {
        "type": "TRAITS",
        "mappings": [
            {"expression": "primary_email", "traitGroup": "Contact", "traitName": "email"}
        ],
    }
    response = api.patch(
        mappings_url(store_id, mapping_id),
        json={"mappingTo": new_items, "isEnabled": False, "description": "CRM"},
        headers={"If-Match": etag},
    )
    assert operation_of(api, response)["status"] == "COMPLETED"
    fetched = api.get(mappings_url(store_id, mapping_id))
    body = fetched.json()
    assert body["mappingTo"] == new_items
    assert body["isEnabled"] is False
    assert body["description"] == "CRM"
    assert body["version"] == 2
    assert fetched.headers["ETag"] != etag
    stale = api.patch(
        mappings_url(store_id, mapping_id), json={"isEnabled": True}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == 520043
    bad = api.patch(
        mappings_url(store_id, mapping_id),
        json={
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [{"expression": "nope", "traitGroup": "Contact", "traitName": "email"}],
            }
        },
    )
    assert bad.status_code == 400
    fixed = api.patch(
        mappings_url(store_id, mapping_id),
        json={"mappingFrom": {"type": "INGRESS", "columns": ["a"]}},
    )
    assert fixed.status_code == 400
    assert "mappingFrom" in fixed.json()["message"]
    assert api.get(mappings_url(store_id, mapping_id)).json()["version"] == 2


def test_enabled_mappings_keep_their_traits(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    make_trait_group(
        api,
        store_id,
        name="Crm",
        traits={"tier": {"dataType": "STRING"}, "x": {"dataType": "STRING"}},
    )
    dataset = crm_dataset(api, settings)
    mapping_id = make_mapping(
        api,
        store_id,
        _mapping(dataset["id"], ("primary_email", "Contact", "email"), ("first", "Crm", "tier")),
    )
    group = f"{STORES}/{store_id}/TraitGroups/Crm"
    refused = api.delete(group)
    assert refused.status_code == 409, refused.text
    assert mapping_id in refused.json()["message"]
    refused = api.patch(group, json={"traits": {"tier": {"dataType": ""}}})
    assert refused.status_code == 409
    assert "Crm.tier" in refused.json()["message"]
    # A trait no mapping writes can go.
    assert api.patch(group, json={"traits": {"x": {"dataType": ""}}}).status_code == 202
    # Disabled, the mapping no longer holds the group; enabling it checks again.
    api.patch(mappings_url(store_id, mapping_id), json={"isEnabled": False})
    assert api.delete(group).status_code == 202
    enable = api.patch(mappings_url(store_id, mapping_id), json={"isEnabled": True})
    assert enable.status_code == 404
    assert enable.json()["code"] == 520047


def test_datasets_in_use_cannot_be_deleted(api: Api, settings: Settings) -> None:
    store_id = make_store(api)
    dataset = crm_dataset(api, settings)
    mapping_id = make_mapping(
        api, store_id, _mapping(dataset["id"], ("primary_email", "Contact", "email"))
    )
    refused = api.delete(f"{DATASETS}/{dataset['id']}")
    assert refused.status_code == 409
    assert mapping_id in refused.json()["message"]
    api.delete(mappings_url(store_id, mapping_id))
    assert api.delete(f"{DATASETS}/{dataset['id']}").status_code == 204
    assert api.get(f"{DATASETS}/{dataset['id']}").status_code == 404
