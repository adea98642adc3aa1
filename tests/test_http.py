"""HTTP conventions every endpoint shares: auth, error shape, compression, limits."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from convmem.accounts import service as accounts
from convmem.app import create_app
from convmem.kit.db import Database
from convmem.settings import Settings
from tests.conftest import Api, basic, new_account
from tests.factories import STORES, make_store
from tests.spec import error_schema, validate


def assert_error(response: object, status: int, code: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    validate(error_schema(), body)
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/api/errors/{code}",
        "status": status,
    }
    assert body["message"] and "Traceback" not in str(body["message"])
    return body


def test_missing_and_wrong_credentials_are_401(app_client: TestClient, db: Database) -> None:
    sid, token = new_account(db)
    assert_error(app_client.get(STORES), 401, 20003)
    assert app_client.get(STORES).headers["WWW-Authenticate"].startswith("Basic")
    assert_error(app_client.get(STORES, headers=basic(sid, "wrong")), 401, 20003)
    assert_error(app_client.get(STORES, headers=basic("ACnope", token)), 401, 20003)
    assert_error(app_client.get(STORES, headers={"Authorization": "Basic !!!"}), 401, 20003)
    assert_error(app_client.get(STORES, headers={"Authorization": "Bearer abc"}), 401, 20003)
    assert app_client.get(STORES, headers=basic(sid, token)).status_code == 200


def test_api_keys_act_for_their_account(app_client: TestClient, db: Database) -> None:
    sid, token = new_account(db)
    with db.transaction() as session:
        key = accounts.create_api_key(session, account_sid=sid)
    owner = Api(app_client, sid, token)
    store_id = make_store(owner)
    response = app_client.get(f"{STORES}/{store_id}", headers=basic(key.sid, key.secret))
    assert response.status_code == 200
    assert_error(app_client.get(STORES, headers=basic(key.sid, "bad")), 401, 20003)


def test_secrets_are_stored_hashed(db: Database) -> None:
    sid, token = new_account(db)
    with db.transaction(write=False) as session:
        from convmem.accounts.models import Account

        stored = session.get(Account, sid)
        assert stored is not None
        assert token not in stored.token_hash
        assert stored.token_hash.startswith("sha256$")


def test_unknown_route_and_method(api: Api) -> None:
    assert_error(api.get("/v1/Nothing"), 404, 20404)
    assert_error(api.request("PUT", STORES, json={}), 405, 20405)


def test_gzip_request_bodies_are_accepted(api: Api) -> None:
    for encoding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        body = compress(orjson.dumps({"displayName": f"zipped-{encoding}"}))
        response = api.post(
            STORES,
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        )
        assert response.status_code == 202, response.text


def test_bad_compressed_bodies(api: Api) -> None:
    json_headers = {"Content-Type": "application/json"}
    corrupt = api.post(
        STORES, content=b"not gzip", headers={**json_headers, "Content-Encoding": "gzip"}
    )
    assert_error(corrupt, 400, 400)
    brotli = api.post(STORES, content=b"x", headers={**json_headers, "Content-Encoding": "br"})
    assert_error(brotli, 415, 20415)
    assert api.get(STORES).json()["stores"] == []


def test_gzip_responses_when_asked(api: Api) -> None:
    store_id = make_store(api)
    traits = {f"trait{n}": {"dataType": "STRING", "description": "x" * 50} for n in range(40)}
    assert (
        api.post(
            f"{STORES}/{store_id}/TraitGroups", json={"displayName": "Big", "traits": traits}
        ).status_code
        == 202
    )
    url = f"{STORES}/{store_id}/TraitGroups?includeTraits=true&orderBy=ASC"
    zipped = api.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.json()["traitGroups"][0]["displayName"] == "Contact"
    plain = api.get(url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers


@pytest.fixture
def small_app(settings: Settings, db: Database) -> Iterator[TestClient]:
    tight = settings.model_copy(
        update={"max_body_bytes": 2048, "rate_limit_per_second": 1.0, "rate_limit_burst": 3}
    )
    with TestClient(create_app(tight, db=db)) as client:
        yield client


def test_decompressed_size_is_bounded(small_app: TestClient, db: Database) -> None:
    auth = basic(*new_account(db))
    bomb = gzip.compress(orjson.dumps({"displayName": "a", "description": "x" * 100_000}))
    assert len(bomb) < 2048
    response = small_app.post(
        STORES,
        content=bomb,
        headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(response, 413, 20413)
    plain = small_app.post(
        STORES,
        content=b'{"displayName": "' + b"a" * 4000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_error(plain, 413, 20413)


def test_rate_limit_answers_429_with_retry_after(small_app: TestClient, db: Database) -> None:
    auth = basic(*new_account(db))
    other = basic(*new_account(db))
    statuses = [small_app.get(STORES, headers=auth).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    limited = small_app.get(STORES, headers=auth)
    assert_error(limited, 429, 20429)
    assert int(limited.headers["Retry-After"]) >= 1
    # The limit is per credential.
    assert small_app.get(STORES, headers=other).status_code == 200


def test_healthz_and_metrics_need_no_auth(app_client: TestClient, api: Api) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    api.get(STORES)
    metrics = app_client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'convmem_http_requests_total{method="GET",route="/v1/ControlPlane/Stores",status="200"}'
        in metrics.text
    )


def test_every_error_path_renders_the_same_shape(api: Api) -> None:
    store_id = make_store(api)
    cases = [
        (api.get(f"{STORES}/bad"), 400, 520049),
        (api.get(f"{STORES}/mem_store_01h455vb4pex5vsknk084sn02q"), 404, 520041),
        (api.post(STORES, json={"displayName": "!"}), 400, 520046),
        (api.get(f"{STORES}/{store_id}/TraitGroups/Nope"), 404, 520047),
        (api.get("/v1/ControlPlane/Operations/nope"), 400, 520051),
        (
            api.get("/v1/ControlPlane/Operations/mem_operation_01h455vb4pex5vsknk084sn02q"),
            404,
            520052,
        ),
        (api.patch(f"{STORES}/{store_id}", json={}, headers={"If-Match": '"x"'}), 412, 520043),
        (api.delete(f"{STORES}/{store_id}/TraitGroups/Contact"), 409, 520050),
    ]
    for response, status, code in cases:
        assert_error(response, status, code)


def test_data_plane_routes_share_the_conventions(
    app_client: TestClient, api: Api, other_api: Api
) -> None:
    store_id = make_store(api)
    url = f"/v1/Stores/{store_id}/Profiles"
    assert_error(app_client.get(url), 401, 20003)
    assert_error(other_api.get(url), 404, 520041)
    assert_error(api.get("/v1/Stores/mem_store_bad/Profiles"), 400, 520049)
    body = gzip.compress(orjson.dumps({"traits": {"Contact": {"email": "gz@x.io"}}}))
    zipped = api.post(
        url, content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert zipped.status_code == 202
    assert_error(
        api.post(url, content=b"{", headers={"Content-Type": "application/json"}), 400, 520046
    )


def test_data_plane_is_rate_limited(small_app: TestClient, db: Database) -> None:
    sid, token = new_account(db)
    auth = basic(sid, token)
    statuses = [
        small_app.get(
            "/v1/Stores/mem_store_01h455vb4pex5vsknk084sn02q/Profiles", headers=auth
        ).status_code
        for _ in range(5)
    ]
    assert statuses[:3] == [404, 404, 404]
    assert 429 in statuses[3:]


def test_the_bench_floor_route_exists_only_when_asked_and_authenticates(
    settings: Settings, db: Database, app_client: TestClient
) -> None:
    body = {"traits": {"Contact": {"email": "a@example.com"}}}
    assert app_client.post("/_bench/floor/mem_store_x", json=body).status_code == 404
    benched = settings.model_copy(update={"bench_routes": True})
    with TestClient(create_app(benched, db=db)) as client:
        assert_error(client.post("/_bench/floor/mem_store_x", json=body), 401, 20003)
        auth = basic(*new_account(db))
        answered = client.post("/_bench/floor/mem_store_x", json=body, headers=auth)
        assert answered.status_code == 202
        # The same body validation as a create: an unknown field is a 400.
        bad = client.post("/_bench/floor/mem_store_x", json={"trait": {}}, headers=auth)
        assert_error(bad, 400, 520046)
        assert "/_bench/floor/{storeId}" not in client.get("/openapi.json").json()["paths"]
