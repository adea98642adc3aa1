"""Small keyword-only helpers that make resources through the HTTP API."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from convmem import wiring
from convmem.kit.db import Database
from convmem.operations.worker import Worker
from convmem.settings import Settings
from tests.conftest import Api

STORES = "/v1/ControlPlane/Stores"
T = TypeVar("T")


def operation_of(api: Api, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    result = api.get(response.headers["Location"])
    assert result.status_code == 200, result.text
    body: dict[str, Any] = result.json()
    return body


def make_store(api: Api, *, name: str | None = None, description: str | None = None) -> str:
    body: dict[str, Any] = {"displayName": name or f"store-{secrets.token_hex(4)}"}
    if description:
        body["description"] = description
    op = operation_of(api, api.post(STORES, json=body))
    assert op["status"] == "COMPLETED", op
    store_id: str = op["result"]["id"]
    return store_id


def make_trait_group(
    api: Api, store_id: str, *, name: str | None = None, traits: dict[str, Any] | None = None
) -> str:
    name = name or f"group_{secrets.token_hex(3)}"
    body = {
        "displayName": name,
        "traits": {"note": {"dataType": "STRING"}} if traits is None else traits,
    }
    response = api.post(f"{STORES}/{store_id}/TraitGroups", json=body)
    assert response.status_code == 202, response.text
    return name


ALYSSA: dict[str, Any] = {
    "traits": {
        "Contact": {
            "email": "Alyssa.Mock@example.com",
            "phone": "+13175551234",
            "lastName": "Mock",
            "firstName": "Alyssa",
            "street": "123 Main St",
            "city": "San Francisco",
            "state": "CA",
            "postalCode": "94107",
            "country": "US",
        }
    }
}


def profiles_url(store_id: str, *rest: str) -> str:
    return "/".join([f"/v1/Stores/{store_id}/Profiles", *rest])


def make_profile(api: Api, store_id: str, **contact: Any) -> str:
    response = api.post(profiles_url(store_id), json={"traits": {"Contact": contact}})
    assert response.status_code == 202, response.text
    profile_id: str = response.json()["id"]
    return profile_id


def race(count: int, call: Callable[[int], T]) -> list[T]:
    """Run call(0..count-1) on `count` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[T] = []

    def run(n: int) -> None:
        barrier.wait()
        results.append(call(n))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_jobs(db: Database, limit: int = 200, *, settings: Settings | None = None) -> None:
    """Run every due background job to its end, in this thread."""
    settings = settings or Settings(job_batch_size=50)
    worker = Worker(db, settings, wiring.jobs(settings))
    for _ in range(limit):
        if not worker.run_once():
            return


def finish(api: Api, db: Database, response: Any) -> dict[str, Any]:
    """The operation of a 202, after running the background jobs it waits for."""
    assert response.status_code == 202, response.text
    run_jobs(db)
    return operation_of(api, response)
