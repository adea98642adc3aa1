"""Helpers for the dataset and data mapping tests."""

from __future__ import annotations

import csv
import secrets
from pathlib import Path
from typing import Any

from convmem.kit.db import Database
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import operation_of, run_jobs

DATASETS = "/v1/ControlPlane/Datasets"


def mappings_url(store_id: str, *rest: str) -> str:
    return "/".join([f"/v1/ControlPlane/Stores/{store_id}/DataMappings", *rest])


def dataset_dir(settings: Settings) -> Path:
    root = settings.dataset_roots[0]
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_csv(settings: Settings, rows: list[dict[str, Any]], name: str | None = None) -> str:
    """A CSV file in the dataset directory; returns its location (relative)."""
    name = name or f"people-{secrets.token_hex(4)}.csv"
    path = dataset_dir(settings) / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return name


def make_dataset(
    api: Api, source: dict[str, Any], *, name: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"displayName": name or f"ds-{secrets.token_hex(4)}", "source": source}
    if kind:
        body["kind"] = kind
    response = api.post(DATASETS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_mapping(api: Api, store_id: str, body: dict[str, Any]) -> str:
    op = operation_of(api, api.post(mappings_url(store_id), json=body))
    assert op["status"] == "COMPLETED", op
    mapping_id: str = op["result"]["id"]
    return mapping_id


def dataset_mapping(
    dataset: dict[str, Any], items: list[tuple[str, str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "displayName": f"m-{secrets.token_hex(4)}",
        "mappingTo": {
            "type": "TRAITS",
            "mappings": [{"expression": f, "traitGroup": g, "traitName": t} for f, g, t in items],
        },
        "mappingFrom": {"type": "DATASET", "datasetId": dataset["id"]},
        **extra,
    }


def run_sync(
    api: Api,
    db: Database,
    settings: Settings,
    store_id: str,
    mapping_id: str,
    mode: str | None = None,
) -> dict[str, Any]:
    body = {"mode": mode} if mode else None
    response = api.post(mappings_url(store_id, mapping_id, "Syncs"), json=body)
    assert response.status_code == 202, response.text
    sync_id = response.json()["syncId"]
    run_jobs(db, settings=settings)
    status = api.get(mappings_url(store_id, mapping_id, "Syncs", sync_id))
    assert status.status_code == 200, status.text
    return dict(status.json())


def report(api: Api, store_id: str, mapping_id: str, sync_id: str) -> list[list[str]]:
    response = api.get(mappings_url(store_id, mapping_id, "Syncs", sync_id, "Report"))
    assert response.status_code == 200, response.text
    return list(csv.reader(response.text.splitlines()))
