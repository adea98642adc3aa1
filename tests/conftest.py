from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from convmem import migrate
from convmem.accounts import service as accounts
from convmem.app import create_app
from convmem.kit.db import Database
from convmem.settings import Settings
from tests.spec import check_response

# A PostgreSQL server the tests may create databases on; its runs are skipped
# when it does not answer.
PG_ADMIN = os.environ.get("CONVMEM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not postgres_reachable():
        if os.environ.get("CI"):
            # CI must not pass silently having tested one backend.
            pytest.fail(f"CI is set but no PostgreSQL server answers at {PG_ADMIN}")
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN}")
    name = f"convmem_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield str(make_url(PG_ADMIN).set(drivername="postgresql+psycopg", database=name))
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Database]]:
    """A migrated database per backend, shared by the session's tests.

    Tests stay isolated because each one acts as its own new account, and an
    account sees only its own stores.
    """
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    # SQL datasets may read the test PostgreSQL server (and nothing else).
    settings = Settings(
        data_dir=data_dir, database_url=url, access_log=False, dataset_sql_hosts="127.0.0.1"
    )
    db = Database(settings.resolved_database_url)
    migrate.upgrade(db)
    yield settings, db
    db.dispose()


@pytest.fixture(scope="session")
def settings(backend: tuple[Settings, Database]) -> Settings:
    return backend[0]


@pytest.fixture(scope="session")
def db(backend: tuple[Settings, Database]) -> Database:
    return backend[1]


@pytest.fixture(scope="session")
def app_client(backend: tuple[Settings, Database]) -> Iterator[TestClient]:
    settings, db = backend
    with TestClient(create_app(settings, db=db), base_url="http://convmem.test") as client:
        client.event_hooks = {"response": [_validate_against_spec]}
        yield client


def _validate_against_spec(response: httpx.Response) -> None:
    response.read()
    check_response(response)


def basic(sid: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{sid}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Api:
    """The real app over HTTP, acting as one account."""

    def __init__(self, client: TestClient, sid: str, token: str) -> None:
        self.client = client
        self.sid = sid
        self.token = token
        self.auth = basic(sid, token)

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        headers = {**self.auth, **(kwargs.pop("headers", None) or {})}  # type: ignore[dict-item]
        return self.client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


def new_account(db: Database) -> tuple[str, str]:
    with db.transaction() as session:
        created = accounts.create_account(session)
    return created.sid, created.secret


@pytest.fixture
def api(app_client: TestClient, db: Database) -> Api:
    return Api(app_client, *new_account(db))


@pytest.fixture
def other_api(app_client: TestClient, db: Database) -> Api:
    return Api(app_client, *new_account(db))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run while the test runs."""
    seen: list[str] = []
    engines = [db.engine] + ([db.async_engine.sync_engine] if db.async_engine else [])

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)
