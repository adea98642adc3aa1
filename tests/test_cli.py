from __future__ import annotations

import re
import time
from pathlib import Path

import httpx2 as httpx
from typer.testing import CliRunner

from convmem.cli import app
from tests.live import Process, base_env, free_port, start_server

runner = CliRunner()


def invoke(data_dir: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_accounts_and_keys(tmp_path: Path) -> None:
    assert "up to date" in invoke(tmp_path, "migrate")
    assert (tmp_path / "convmem.db").exists()
    created = invoke(tmp_path, "accounts", "create", "--name", "acme")
    sid = re.search(r"Account SID: (AC[0-9a-f]{32})", created)
    token = re.search(r"Auth token:\s+([0-9a-f]{32})", created)
    assert sid and token
    listed = invoke(tmp_path, "accounts", "list")
    assert sid.group(1) in listed and "acme" in listed
    assert token.group(1) not in listed

    key = invoke(tmp_path, "keys", "create", "--account", sid.group(1))
    assert re.search(r"API key SID: SK[0-9a-f]{32}", key)
    assert re.search(r"Secret:\s+[0-9a-f]{32}", key)

    missing = runner.invoke(
        app, ["keys", "create", "--account", "AC" + "f" * 32, "--data-dir", str(tmp_path)]
    )
    assert missing.exit_code == 1
    assert "does not exist" in missing.output


def test_serve_creates_and_prints_the_first_account_once(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    del env["CONVMEM_ACCOUNT_SID"], env["CONVMEM_AUTH_TOKEN"]
    port = free_port()
    first = Process(["serve", "--port", str(port)], env, tmp_path / "first.log")
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        output = first.output()
        sid = re.search(r"Account SID: (AC[0-9a-f]{32})", output)
        token = re.search(r"Auth token:\s+([0-9a-f]{32})", output)
        assert sid and token, output
        stores = httpx.get(f"{url}/v1/ControlPlane/Stores", auth=(sid.group(1), token.group(1)))
        assert stores.status_code == 200
    finally:
        first.stop()
    again, _ = start_server(tmp_path)
    again.stop()
    assert "Account SID" not in again.output()


def test_configured_account_exists_with_its_token(tmp_path: Path) -> None:
    process, url = start_server(tmp_path)
    try:
        env = base_env(tmp_path)
        auth = (env["CONVMEM_ACCOUNT_SID"], env["CONVMEM_AUTH_TOKEN"])
        assert httpx.get(f"{url}/v1/ControlPlane/Stores", auth=auth).status_code == 200
        assert "Account SID" not in process.output()
    finally:
        process.stop()


def test_serve_with_several_processes(tmp_path: Path) -> None:
    process, url = start_server(tmp_path, CONVMEM_PROCESSES="2")
    try:
        auth = (base_env(tmp_path)["CONVMEM_ACCOUNT_SID"], base_env(tmp_path)["CONVMEM_AUTH_TOKEN"])
        client = httpx.Client(base_url=url, auth=auth, timeout=10)
        op = client.post("/v1/ControlPlane/Stores", json={"displayName": "multi"})
        store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        body = {"traits": {"Contact": {"email": "multi@x.io"}}}
        ids = {
            client.post(f"/v1/Stores/{store_id}/Profiles", json=body).json()["id"]
            for _ in range(20)
        }
        assert len(ids) == 1  # every process resolves to the same profile
        client.close()
    finally:
        process.stop()


def test_merges_command_lists_the_audit_trail(tmp_path: Path) -> None:
    process, url = start_server(tmp_path)
    try:
        env = base_env(tmp_path)
        client = httpx.Client(
            base_url=url, auth=(env["CONVMEM_ACCOUNT_SID"], env["CONVMEM_AUTH_TOKEN"])
        )
        op = client.post("/v1/ControlPlane/Stores", json={"displayName": "audit"})
        store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        profiles = f"/v1/Stores/{store_id}/Profiles"
        first = client.post(profiles, json={"traits": {"Contact": {"email": "a@x.io"}}}).json()[
            "id"
        ]
        second = client.post(
            profiles, json={"traits": {"Contact": {"phone": "+13175550009"}}}
        ).json()["id"]
        client.post(
            profiles, json={"traits": {"Contact": {"email": "a@x.io", "phone": "+13175550009"}}}
        )
        client.close()
    finally:
        process.stop()
    result = runner.invoke(
        app, ["merges", store_id, "--data-dir", str(tmp_path)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert second in result.output and first in result.output and "phone" in result.output
