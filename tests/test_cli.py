from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
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
    assert missing.exit_code == 2
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
        # Every scrape counts the requests of all processes.
        route = 'route="/v1/Stores/{storeId}/Profiles",status="202"'
        for _ in range(4):
            scraped = client.get("/metrics").text
            line = next(row for row in scraped.splitlines() if route in row)
            assert float(line.rsplit(" ", 1)[1]) == 20, line
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


def run_convmem(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convmem", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_configuration_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        ({"CONVMEM_ACCOUNT_SID": "ACnot-a-sid", "CONVMEM_AUTH_TOKEN": "t"}, "CONVMEM_ACCOUNT_SID"),
        (
            {"CONVMEM_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
            "CONVMEM_DATABASE_URL",
        ),
        ({"CONVMEM_JOB_LEASE_SECONDS": "soon"}, "CONVMEM_JOB_LEASE_SECONDS"),
        ({"CONVMEM_ACCOUNT_SID": "AC" + "0" * 32}, "CONVMEM_AUTH_TOKEN"),
    ]
    for env, named in cases:
        result = run_convmem(
            {"CONVMEM_DATA_DIR": str(tmp_path / "data"), **env}, "serve", "--port", "0"
        )
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("convmem: error: ") and named in lines[0]
        assert "Traceback" not in result.stderr + result.stdout


def test_admin_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for args in (["accounts", "list"], ["keys", "list"], ["merges", "mem_store_" + "0" * 26]):
        result = runner.invoke(app, [*args, "--data-dir", str(missing)])
        assert result.exit_code == 2, result.output
        assert "no convmem database" in result.output
    assert not missing.exists()


def test_merges_refuses_unknown_or_malformed_stores(tmp_path: Path) -> None:
    invoke(tmp_path, "migrate")
    for store, says in (
        ("mem_store_bogus", "not a store id"),
        ("mem_store_" + "0" * 26, "no store"),
    ):
        result = runner.invoke(app, ["merges", store, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2
        assert says in result.output


def test_listings_keep_ids_whole_and_speak_json(tmp_path: Path) -> None:
    invoke(tmp_path, "migrate")
    sid = re.search(r"AC[0-9a-f]{32}", invoke(tmp_path, "accounts", "create", "--name", "x"))
    assert sid
    key = re.search(r"SK[0-9a-f]{32}", invoke(tmp_path, "keys", "create", "--account", sid[0]))
    assert key
    for columns in ("80", "40"):
        narrow = runner.invoke(
            app, ["keys", "list", "--data-dir", str(tmp_path)], env={"COLUMNS": columns}
        )
        assert key[0] in narrow.output and sid[0] in narrow.output
    listed = json.loads(invoke(tmp_path, "accounts", "list", "--json"))
    assert [a["sid"] for a in listed] == [sid[0]]
    keys = json.loads(invoke(tmp_path, "keys", "list", "--json", "--account", sid[0]))
    assert keys[0]["sid"] == key[0] and keys[0]["accountSid"] == sid[0]
    assert "secret" not in json.dumps(keys).lower()


def test_revoked_keys_and_rotated_tokens_stop_working(tmp_path: Path) -> None:
    process, url = start_server(tmp_path, CONVMEM_CREDENTIAL_CACHE_SECONDS="0")
    try:
        sid = base_env(tmp_path)["CONVMEM_ACCOUNT_SID"]
        created = invoke(tmp_path, "keys", "create", "--account", sid)
        key = re.search(r"API key SID: (SK[0-9a-f]{32})", created)
        secret = re.search(r"Secret:\s+([0-9a-f]{32})", created)
        assert key and secret
        stores = f"{url}/v1/ControlPlane/Stores"
        assert httpx.get(stores, auth=(key[1], secret[1])).status_code == 200
        revoked = invoke(tmp_path, "keys", "revoke", key[1])
        assert "CONVMEM_CREDENTIAL_CACHE_SECONDS" in revoked
        assert httpx.get(stores, auth=(key[1], secret[1])).status_code == 401
        assert (
            runner.invoke(app, ["keys", "revoke", key[1], "--data-dir", str(tmp_path)]).exit_code
            == 2
        )

        old = base_env(tmp_path)["CONVMEM_AUTH_TOKEN"]
        rotated = invoke(tmp_path, "accounts", "rotate-token", sid)
        token = re.search(r"Auth token:\s+([0-9a-f]{32})", rotated)
        assert token
        assert httpx.get(stores, auth=(sid, old)).status_code == 401
        assert httpx.get(stores, auth=(sid, token[1])).status_code == 200
    finally:
        process.stop()


def test_help_shows_defaults_and_no_type_noise() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "8000" in result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


def test_log_lines_carry_the_request_in_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from convmem.kit import logging as logs

    request = {"method": "GET", "route": "/v1/x", "status": 200, "ms": 1.5, "account": "ACx"}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "console")
        logging.getLogger("convmem.access").info("request", extra=request)
        logs.configure("INFO", "json")
        logging.getLogger("uvicorn.error").info(
            "Started", extra={"color_message": "\x1b[36mStarted\x1b[0m"}
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    console_line, json_line = capsys.readouterr().err.strip().splitlines()
    for part in ("GET", "route=/v1/x", "status=200", "ms=1.5", "account=ACx"):
        assert part in console_line
    assert "color_message" not in json_line and "\x1b" not in json_line
    assert json.loads(json_line)["msg"] == "Started"


def test_admin_commands_use_the_sqlite_file_the_url_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    env = {"CONVMEM_DATABASE_URL": url}
    assert (
        runner.invoke(app, ["migrate", "--data-dir", str(tmp_path / "d")], env=env).exit_code == 0
    )
    listed = runner.invoke(app, ["accounts", "list", "--data-dir", str(tmp_path / "d")], env=env)
    assert listed.exit_code == 0, listed.output


def test_import_command_against_a_live_server(tmp_path: Path) -> None:
    from tests.live import ACCOUNT_SID, AUTH_TOKEN

    server, url = start_server(tmp_path, CONVMEM_JOB_POLL_SECONDS="0.1")
    client = httpx.Client(base_url=url, auth=(ACCOUNT_SID, AUTH_TOKEN))
    try:
        location = client.post("/v1/ControlPlane/Stores", json={"displayName": "cli-import"})
        store_id = client.get(location.headers["Location"]).json()["result"]["id"]
        people = tmp_path / "people.csv"
        people.write_text("email_address,first_name\ncli@example.com,Cli\n,nobody\n")
        auth = ["--url", url, "--account", ACCOUNT_SID, "--token", AUTH_TOKEN]
        maps = ["--map", "email_address=Contact.email", "--map", "first_name=Contact.firstName"]
        args = ["import", "--store", store_id, "--file", str(people), *maps, *auth]
        dry = runner.invoke(app, [*args, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "COMPLETED" in dry.output
        lookup = {"idType": "email", "value": "cli@example.com"}
        path = f"/v1/Stores/{store_id}/Profiles/Lookup"
        assert client.post(path, json=lookup).json()["profiles"] == []
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "1 errors" in result.output and "/Report" in result.output
        assert len(client.post(path, json=lookup).json()["profiles"]) == 1
        # Header names that are trait names need no --map.
        named = tmp_path / "named.csv"
        named.write_text("email,Contact.firstName\nnamed@example.com,Named\n")
        inferred = runner.invoke(app, ["import", "--store", store_id, "--file", str(named), *auth])
        assert inferred.exit_code == 0, inferred.output
        lookup = {"idType": "email", "value": "named@example.com"}
        assert len(client.post(path, json=lookup).json()["profiles"]) == 1
        # A refusal is one line naming the problem.
        bad_maps = ["--map", "email_address=Nope.email", "--map", "first_name=Contact.firstName"]
        bad = runner.invoke(app, [*args[:5], *bad_maps, *auth])
        assert bad.exit_code == 2
        assert "no trait group 'Nope'" in bad.output
    finally:
        client.close()
        server.stop()
