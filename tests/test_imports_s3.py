"""Imports with S3 storage, against a real S3-compatible server (moto's
server mode, started here). moto enforces neither the signed content length
nor the URL's expiry, so what is checked here is convmem's own checking."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from convmem.app import create_app
from convmem.kit.db import Database
from convmem.settings import Settings
from tests.conftest import Api, new_account
from tests.factories import make_store, run_jobs
from tests.live import free_port
from tests.test_imports import MAPPINGS, imports_url, lookup

BUCKET = "convmem-imports"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, settings: Settings, db: Database) -> Iterator[tuple[Api, Settings]]:
    s3_settings = settings.model_copy(
        update={
            "import_storage": f"s3://{BUCKET}/uploads",
            "s3_endpoint_url": s3_endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test",
        }
    )
    with TestClient(create_app(s3_settings, db=db), base_url="http://convmem.test") as client:
        yield Api(client, *new_account(db)), s3_settings


def _create(api: Api, store_id: str, size: int) -> dict[str, str]:
    body = {"filename": "people.csv", "fileSize": size, "columnMappings": MAPPINGS}
    response = api.post(imports_url(store_id), json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_import_through_a_bucket(s3: tuple[Api, Settings], db: Database) -> None:
    api, settings = s3
    store_id = make_store(api)
    data = b"email,phone,first\ns3@example.com,+14155550199,Esther\n"
    created = _create(api, store_id, len(data))
    url = urlsplit(created["url"])
    assert url.netloc == urlsplit(settings.s3_endpoint_url or "").netloc
    assert url.path == f"/{BUCKET}/uploads/{store_id}/{created['importId']}.csv"
    query = parse_qs(url.query)
    # S3 itself refuses a body of another size: the length is part of the signature.
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Expires"] == ["1800"]

    # Not uploaded yet: the worker looks, and the import keeps waiting.
    run_jobs(db, settings=settings)
    status = api.get(imports_url(store_id, created["importId"])).json()
    assert status["status"] == "PENDING"

    assert httpx.put(created["url"], content=data).status_code == 200
    _run_due(db, settings)
    status = api.get(imports_url(store_id, created["importId"])).json()
    assert status["status"] == "COMPLETED", status
    assert status["counts"]["created"] == 1
    assert len(lookup(api, store_id, "email", "s3@example.com")) == 1


def test_object_of_the_wrong_size_fails(s3: tuple[Api, Settings], db: Database) -> None:
    api, settings = s3
    store_id = make_store(api)
    data = b"email,phone,first\nsize@example.com,,S\n"
    created = _create(api, store_id, len(data) + 5)
    # moto stores it anyway (real S3 would refuse the PUT).
    assert httpx.put(created["url"], content=data).status_code == 200
    _run_due(db, settings)
    status = api.get(imports_url(store_id, created["importId"])).json()
    assert status["status"] == "FAILED"
    assert "declared fileSize" in status["message"]
    assert lookup(api, store_id, "email", "size@example.com") == []


def _run_due(db: Database, settings: Settings) -> None:
    """Make deferred import jobs due now, then run them."""
    from sqlalchemy import update

    from convmem.kit.db import utcnow
    from convmem.operations.models import Operation

    with db.transaction() as session:
        session.execute(
            update(Operation)
            .where(Operation.kind == "profiles.import", Operation.status == "PENDING")
            .values(run_after=utcnow())
        )
    run_jobs(db, settings=settings)
