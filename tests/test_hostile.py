"""Hostile input: every defect found by fuzzing and hand-made bad requests, on
both backends. Each answers a clear 4xx and leaves nothing half-written or
unreadable behind."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import STORES, make_profile, make_store, make_trait_group, profiles_url
from tests.live import start_server
from tests.test_http import assert_error


def trait_group(api: Api, store_id: str, traits: dict[str, Any]) -> str:
    return make_trait_group(api, store_id, name="Hostile", traits=traits)


def write(api: Api, store_id: str, **traits: Any) -> Any:
    body = {"traits": {"Contact": {"email": "h@example.com"}, "Hostile": traits}}
    return api.post(profiles_url(store_id), json=body)


# 1. ReDoS ---------------------------------------------------------------------


def test_backtracking_patterns_run_in_linear_time(api: Api) -> None:
    store_id = make_store(api)
    rule = {"ruleType": "STRING", "pattern": "^(a+)+$"}
    trait_group(api, store_id, {"word": {"dataType": "STRING", "validationRule": rule}})
    start = time.perf_counter()
    response = write(api, store_id, word="a" * 1000 + "!")
    assert time.perf_counter() - start < 1.0
    assert_error(response, 400, 520046)
    assert "does not match pattern" in response.json()["message"]
    assert write(api, store_id, word="aaaa").status_code == 202


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)b", "(?<!a)b", "a{2000}", "((a{999}){999})"])
def test_patterns_rre2_cannot_run_are_refused_at_definition(api: Api, pattern: str) -> None:
    store_id = make_store(api)
    rule = {"ruleType": "STRING", "pattern": pattern}
    response = api.post(
        f"{STORES}/{store_id}/TraitGroups",
        json={"displayName": "G", "traits": {"t": {"dataType": "STRING", "validationRule": rule}}},
    )
    body = assert_error(response, 400, 520046)
    assert "traits.t.validationRule.pattern" in str(body["message"])
    assert "linear time" in str(body["message"])
    assert api.get(f"{STORES}/{store_id}/TraitGroups/G").status_code == 404


# 2. Numbers -------------------------------------------------------------------

NUMBER_TRAITS = {
    "n": {"dataType": "NUMBER"},
    "a": {"dataType": "ARRAY"},
    "s": {"dataType": "STRING"},
}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'"a": [1180591620717411303424]', "a[0]"),
        (b'"n": 1180591620717411303424', "n"),
        (b'"n": 18446744073709551616', "n"),
        (b'"n": -9223372036854775809', "n"),
        (b'"n": 1' + b"0" * 400, "n"),
        (b'"n": 1e309', "n"),
        (b'"a": [1, 1e309]', "a[1]"),
        (b'"a": [-1e309]', "a[0]"),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_field(
    api: Api, raw: bytes, field: str
) -> None:
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    body = b'{"traits": {"Contact": {"email": "n@example.com"}, "Hostile": {' + raw + b"}}}"
    response = api.post(
        profiles_url(store_id), content=body, headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 400, 520046)
    assert f"body.traits.Hostile.{field}" in str(error["message"]), error
    assert "out of range" in str(error["message"])
    assert api.get(profiles_url(store_id)).json()["profiles"] == []


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_number_literals_are_invalid_json(api: Api, literal: bytes) -> None:
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    body = b'{"traits": {"Contact": {"email": "n@example.com"}, "Hostile": {"a": [' + literal
    response = api.post(
        profiles_url(store_id),
        content=body + b"]}}}",
        headers={"Content-Type": "application/json"},
    )
    assert "invalid JSON" in str(assert_error(response, 400, 520046)["message"])


def test_numbers_at_the_edges_of_the_range_round_trip(api: Api) -> None:
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    values = {"n": 2**63 - 1, "a": [-(2**63), 1.7976931348623157e308, 0.5, True, "x"]}
    response = write(api, store_id, **values)
    assert response.status_code == 202, response.text
    fetched = api.get(profiles_url(store_id, response.json()["id"]))
    assert fetched.status_code == 200
    assert fetched.json()["traits"]["Hostile"] == values


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (b'{"ruleType": "STRING", "maxLength": 1180591620717411303424}', "maxLength"),
        (b'{"ruleType": "NUMBER", "min": 1e309}', "min"),
        (b'{"ruleType": "NUMBER", "max": -1e309}', "max"),
        (b'{"ruleType": "ARRAY", "maxItems": 99999999999999999999}', "maxItems"),
    ],
)
def test_validation_rule_numbers_out_of_range_are_refused(
    api: Api, rule: bytes, field: str
) -> None:
    store_id = make_store(api)
    kind = rule.split(b'"')[3].decode()
    body = (
        b'{"displayName": "G", "traits": {"t": {"dataType": "'
        + kind.encode()
        + b'", "validationRule": '
        + rule
        + b"}}}"
    )
    response = api.post(
        f"{STORES}/{store_id}/TraitGroups",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    error = assert_error(response, 400, 520046)
    assert f"validationRule.{field}" in str(error["message"])
    assert api.get(f"{STORES}/{store_id}/TraitGroups/G").status_code == 404


def test_value_sizes_follow_the_documented_limits(api: Api) -> None:
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    assert write(api, store_id, s="x" * 1024).status_code == 202
    too_long = assert_error(write(api, store_id, s="x" * 1025), 400, 520046)
    assert "body.traits.Hostile.s" in str(too_long["message"]) or "Hostile.s" in str(
        too_long["message"]
    )
    assert write(api, store_id, a=list(range(100))).status_code == 202
    assert_error(write(api, store_id, a=list(range(101))), 400, 520046)
    assert_error(write(api, store_id, a=["x" * 1025]), 400, 520046)


# 3. NUL and other text no backend can store -----------------------------------


def test_nul_in_bodies_is_refused_on_every_backend(api: Api) -> None:
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    url = profiles_url(store_id)
    cases = [
        (api.post(url, json={"traits": {"Contact": {"email": "a\x00b@example.com"}}}), "email"),
        (write(api, store_id, s="nul\x00"), "Hostile.s"),
        (write(api, store_id, a=["x", "\x00"]), "Hostile.a[1]"),
        (api.post(f"{url}/Lookup", json={"idType": "email", "value": "\x00"}), "value"),
        (api.post(STORES, json={"displayName": "ok", "description": "\x00"}), "description"),
        (
            api.post(
                f"{STORES}/{store_id}/TraitGroups",
                json={"displayName": "G", "traits": {"t\x00": {"dataType": "STRING"}}},
            ),
            "field name",
        ),
        (
            api.post(
                f"{STORES}/{store_id}/TraitGroups",
                json={
                    "displayName": "G",
                    "traits": {
                        "t": {
                            "dataType": "STRING",
                            "validationRule": {"ruleType": "STRING", "pattern": "a\x00"},
                        }
                    },
                },
            ),
            "pattern",
        ),
    ]
    for response, field in cases:
        error = assert_error(response, 400, 520046)
        assert field in str(error["message"]) and "NUL" in str(error["message"]), error
    lone_surrogate = api.post(
        url,
        content=b'{"traits": {"Contact": {"email": "\\ud800@example.com"}}}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(lone_surrogate, 400, 520046)
    assert api.get(url).json()["profiles"] == []


def test_nul_in_paths_queries_and_page_tokens_is_refused(api: Api) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="p@example.com")
    url = profiles_url(store_id)
    for response in (
        api.get(f"{url}/{profile_id}/Identifiers/%00"),
        api.get(f"{url}/{profile_id}?traitGroups=%00"),
        api.get(f"{STORES}/{store_id}/TraitGroups/%00"),
        api.get(f"{STORES}/{store_id}/TraitGroups/a%00b"),
    ):
        assert "NUL" in str(assert_error(response, 400, 520046)["message"])
    import base64

    import orjson

    forged = base64.urlsafe_b64encode(
        orjson.dumps({"o": "DESC", "k": "mem_profile_\x00", "b": False, "s": "profiles"})
    ).decode()
    assert_error(api.get(url, params={"pageToken": forged}), 400, 520046)
    # The store is still perfectly readable afterwards.
    assert api.get(f"{url}/{profile_id}").status_code == 200


# 8. Smaller ---------------------------------------------------------------------


def test_405_lists_every_allowed_method(api: Api) -> None:
    store_id = make_store(api)
    response = api.request("OPTIONS", STORES)
    assert_error(response, 405, 20405)
    assert response.headers["Allow"] == "GET, POST"
    profile = api.request("PUT", f"{profiles_url(store_id)}/mem_profile_01h455vb4pex5vsknk084sn02q")
    assert_error(profile, 405, 20405)
    assert profile.headers["Allow"] == "DELETE, GET, PATCH"


def test_literal_profile_routes_answer_405_not_a_malformed_id(api: Api) -> None:
    store_id = make_store(api)
    for path, allowed in (("Lookup", "POST"), ("Bulk", "PUT")):
        for method in ("PATCH", "GET", "DELETE"):
            response = api.request(method, profiles_url(store_id, path), json={})
            assert_error(response, 405, 20405)
            assert response.headers["Allow"] == allowed


def test_ids_the_spec_admits_are_unknown_not_malformed(api: Api) -> None:
    store_id = make_store(api)
    for letter in "ilou":
        profile = "mem_profile_01h455vb4pex5vsknk084sn0" + letter * 2
        assert_error(api.get(profiles_url(store_id, profile)), 404, 520009)
        operation = "mem_operation_01h455vb4pex5vsknk084sn0" + letter * 2
        assert_error(api.get(f"/v1/ControlPlane/Operations/{operation}"), 404, 520052)


def test_patch_without_traits_is_refused(api: Api) -> None:
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="p@example.com")
    for body in ({"traits": None}, {}, {"traits": {}}):
        error = assert_error(api.patch(profiles_url(store_id, profile_id), json=body), 400, 520046)
        assert "traits" in str(error["message"])


def test_json_sent_as_another_content_type_is_read_as_json(api: Api) -> None:
    plain = api.post(
        STORES,
        content=b'{"displayName": "curl-d"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert plain.status_code == 202, plain.text
    form = api.post(
        STORES,
        content=b"displayName=form",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "application/json" in str(assert_error(form, 415, 20415)["message"])


def test_short_bodies_time_out_and_free_the_connection(tmp_path: Path) -> None:
    server, url = start_server(tmp_path, workers=False, CONVMEM_BODY_READ_TIMEOUT_SECONDS="1")
    try:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            start = time.monotonic()
            sock.sendall(
                b"POST /v1/ControlPlane/Stores HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"displayName": "a"}'
            )
            answer = sock.recv(4096)
            elapsed = time.monotonic() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert elapsed < 5
    finally:
        server.stop()


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    from convmem.kit.db import Database

    data_dir = tmp_path / "fresh" / "data"
    db = Database(f"sqlite:///{data_dir / 'convmem.db'}")
    try:
        with db.transaction() as session:
            from sqlalchemy import text

            session.execute(text("CREATE TABLE t (x)"))
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in data_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        db.dispose()


def test_only_unique_violations_count_as_conflicts(db: Any) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from convmem.kit.db import is_retryable, is_unique_violation

    sid = "AC" + "f" * 32
    insert = text(
        "INSERT INTO accounts (sid, token_hash, friendly_name, created_at) "
        "VALUES (:sid, :hash, NULL, CURRENT_TIMESTAMP)"
    )
    with db.transaction() as session:
        session.execute(text("DELETE FROM accounts WHERE sid = :sid"), {"sid": sid})
        session.execute(insert, {"sid": sid, "hash": "x"})
    with pytest.raises(IntegrityError) as duplicate, db.transaction() as session:
        session.execute(insert, {"sid": sid, "hash": "x"})
    assert is_unique_violation(duplicate.value)
    with pytest.raises(IntegrityError) as not_null, db.transaction() as session:
        session.execute(insert, {"sid": "AC" + "e" * 32, "hash": None})
    assert not is_unique_violation(not_null.value)
    assert not is_retryable(not_null.value)


def test_large_bodies_are_checked_too(api: Any) -> None:
    # Parsed off the event loop past 256 KiB; the same bounds apply.
    store_id = make_store(api)
    trait_group(api, store_id, NUMBER_TRAITS)
    items = [
        {"traits": {"Contact": {"email": f"b{n}@example.com"}, "Hostile": {"s": "x" * 300}}}
        for n in range(999)
    ]
    items.append({"traits": {"Contact": {"email": "last@example.com"}, "Hostile": {"s": "\x00"}}})
    response = api.put(profiles_url(store_id, "Bulk"), json={"profiles": items})
    error = assert_error(response, 400, 520046)
    assert "body.profiles[999].traits.Hostile.s" in str(error["message"])
    items[-1]["traits"]["Hostile"]["s"] = "fine"
    assert api.put(profiles_url(store_id, "Bulk"), json={"profiles": items}).status_code == 202
