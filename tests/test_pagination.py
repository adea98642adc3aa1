from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import STORES, make_store


def walk(api: Api, params: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    metas = []
    params = dict(params)
    while True:
        body = api.get(STORES, params=params).json()
        ids.extend(body["stores"])
        metas.append(body["meta"])
        token = body["meta"].get("nextToken")
        if not token:
            return ids, metas
        params["pageToken"] = token


@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_stores_paginate_in_both_orders(api: Api, order: str) -> None:
    created = [make_store(api, name=f"p{n}") for n in range(7)]
    ids, metas = walk(api, {"pageSize": 3, "orderBy": order})
    expected = created if order == "ASC" else list(reversed(created))
    assert ids == expected
    assert [m["pageSize"] for m in metas] == [3, 3, 1]
    assert all(m["key"] == "stores" for m in metas)
    assert "previousToken" not in metas[0]
    assert "nextToken" not in metas[-1]


def test_default_order_is_newest_first(api: Api) -> None:
    created = [make_store(api, name=f"d{n}") for n in range(3)]
    assert api.get(STORES).json()["stores"] == list(reversed(created))


def test_previous_token_walks_back(api: Api) -> None:
    created = [make_store(api, name=f"b{n}") for n in range(7)]
    first = api.get(STORES, params={"pageSize": 3, "orderBy": "ASC"}).json()
    second = api.get(
        STORES, params={"pageSize": 3, "orderBy": "ASC", "pageToken": first["meta"]["nextToken"]}
    ).json()
    assert second["stores"] == created[3:6]
    back = api.get(
        STORES,
        params={"pageSize": 3, "orderBy": "ASC", "pageToken": second["meta"]["previousToken"]},
    ).json()
    assert back["stores"] == created[:3]
    assert "previousToken" not in back["meta"]
    assert back["meta"]["nextToken"]


@pytest.mark.parametrize(
    "params",
    [
        {"pageSize": 0},
        {"pageSize": 101},
        {"pageSize": "many"},
        {"orderBy": "SIDEWAYS"},
        {"pageToken": "not-a-token"},
        {"pageToken": "x" * 4097},
    ],
)
def test_bad_paging_parameters_are_400(api: Api, params: dict[str, Any]) -> None:
    response = api.get(STORES, params=params)
    assert response.status_code == 400
    assert response.json()["code"] == 520046
    name = next(iter(params))
    assert name in response.json()["message"]


def test_order_by_is_case_insensitive(api: Api) -> None:
    created = [make_store(api, name=f"c{n}") for n in range(2)]
    assert api.get(STORES, params={"orderBy": "asc"}).json()["stores"] == created


def test_token_with_a_different_order_is_rejected(api: Api) -> None:
    for n in range(3):
        make_store(api, name=f"o{n}")
    token = api.get(STORES, params={"pageSize": 1, "orderBy": "ASC"}).json()["meta"]["nextToken"]
    response = api.get(STORES, params={"pageSize": 1, "orderBy": "DESC", "pageToken": token})
    assert response.status_code == 400
    assert "orderBy" in response.json()["message"]


def test_a_token_of_another_list_is_rejected(api: Api) -> None:
    store_id = make_store(api)
    for n in range(3):
        api.post(
            f"/v1/Stores/{store_id}/Profiles", json={"traits": {"Contact": {"email": f"t{n}@x.io"}}}
        )
    token = api.get(f"/v1/Stores/{store_id}/Profiles", params={"pageSize": 1}).json()["meta"][
        "nextToken"
    ]
    response = api.get(STORES, params={"pageToken": token})
    assert response.status_code == 400
    assert "another list" in response.json()["message"]
