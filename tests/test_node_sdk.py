"""The Memory API's documented DataMapping requests, sent with the official
`twilio` package from npm (pinned in tests/node/package.json) to a live
`convmem serve`. Skipped only where `node` (or `npm`) is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.live import ACCOUNT_SID, AUTH_TOKEN, start_server

NODE_DIR = Path(__file__).resolve().parent / "node"
# Installed once per checkout, outside the source tree (like the venv).
INSTALL_DIR = Path(__file__).resolve().parents[1] / ".venv" / "node-sdk"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to run the Node SDK",
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    manifest = (NODE_DIR / "package.json").read_text()
    stamp = INSTALL_DIR / ".installed"
    if not stamp.exists() or stamp.read_text() != manifest:
        (INSTALL_DIR / "package.json").write_text(manifest)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=INSTALL_DIR,
            check=True,
            timeout=300,
        )
        stamp.write_text(manifest)
    return INSTALL_DIR / "node_modules"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    data_dir = tmp_path_factory.mktemp("node")
    process, base = start_server(data_dir, database_url=url)
    yield base, data_dir
    process.stop()


def test_documented_data_mapping_requests_with_the_node_sdk(
    node_modules: Path, server: tuple[str, Path]
) -> None:
    base, data_dir = server
    (data_dir / "datasets").mkdir(exist_ok=True)
    (data_dir / "datasets" / "crm.csv").write_text("primary_email,first\nnode@example.com,N\n")
    client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
    op = client.post("/v1/ControlPlane/Stores", json={"displayName": f"node-{data_dir.name}"})
    store_id = client.get(op.headers["Location"]).json()["result"]["id"]
    dataset = client.post(
        "/v1/ControlPlane/Datasets",
        json={"displayName": "crm", "source": {"type": "CSV", "location": "crm.csv"}},
    ).json()
    env = {
        **os.environ,
        "NODE_PATH": str(node_modules),
        "BASE": base,
        "SID": ACCOUNT_SID,
        "TOKEN": AUTH_TOKEN,
        "STORE": store_id,
        "DATASET": dataset["id"],
    }
    done = subprocess.run(
        ["node", str(NODE_DIR / "data_mappings.js")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["operationStatus"] == "COMPLETED"
    assert seen["id"].startswith("mem_datamapping_")
    assert seen["fetched"] == {
        "displayName": "crm-contacts",
        "mappingTo": {
            "type": "TRAITS",
            "mappings": [
                {"expression": "primary_email", "traitGroup": "Contact", "traitName": "email"}
            ],
        },
        "mappingFrom": {"type": "DATASET_WAREHOUSE", "datasetId": dataset["id"]},
        "version": 1,
        "isEnabled": True,
    }
    assert seen["listed"] == [seen["id"]]
    assert seen["patchedStatusUrl"]
    assert seen["versionAfterPatch"] == 2
    assert (seen["goneStatus"], seen["goneCode"]) == (404, 520048)
    client.close()
