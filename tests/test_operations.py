from __future__ import annotations

from tests.conftest import Api
from tests.factories import STORES, make_store

OPS = "/v1/ControlPlane/Operations"


def test_fetch_operation_has_spec_fields_and_headers(api: Api) -> None:
    created = api.post(STORES, json={"displayName": "ops"})
    op_id = created.headers["Operation-Id"]
    response = api.get(f"{OPS}/{op_id}")
    assert response.status_code == 200
    assert response.headers["Operation-Id"] == op_id
    assert response.headers["Retry-After"] == "0"
    body = response.json()
    assert body["operationId"] == op_id
    assert body["status"] == "COMPLETED"
    assert body["createdAt"].endswith("Z")
    assert body["completedAt"] >= body["createdAt"]
    assert body["statusUrl"] == created.json()["statusUrl"]


def test_pending_operation_advertises_retry(api: Api) -> None:
    store_id = make_store(api)
    deleted = api.delete(f"{STORES}/{store_id}")
    # The test app runs no workers, so the purge is still waiting.
    status = api.get(deleted.headers["Location"])
    assert status.json()["status"] == "PENDING"
    assert status.headers["Retry-After"] == "1"
    assert "completedAt" not in status.json()


def test_malformed_and_unknown_operation_ids(api: Api, other_api: Api) -> None:
    malformed = api.get(f"{OPS}/op_123")
    assert malformed.status_code == 400
    assert malformed.json()["code"] == 520051
    unknown = api.get(f"{OPS}/mem_operation_01h455vb4pex5vsknk084sn02q")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 520052
    # Another account's operation is unknown to you.
    op_id = api.post(STORES, json={"displayName": "mine"}).headers["Operation-Id"]
    assert other_api.get(f"{OPS}/{op_id}").json()["code"] == 520052
