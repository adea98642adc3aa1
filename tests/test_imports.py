"""CSV profile imports over HTTP on both backends: create, upload, process,
status, list, report, dry run; every validation error and bad upload."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from convmem.imports.models import ProfileImport
from convmem.imports.service import upload_of
from convmem.imports.storage import LocalStorage
from convmem.kit.db import Database, utcnow
from convmem.operations.models import Operation
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import make_profile, make_store, profiles_url, run_jobs

DOCUMENTED = {
    "filename": "profiles_import.csv",
    "fileSize": 204800,
    "columnMappings": [
        {"columnName": "first_name", "traitGroup": "Contact", "traitName": "firstName"},
        {"columnName": "last_name", "traitGroup": "Contact", "traitName": "lastName"},
        {"columnName": "email_address", "traitGroup": "Contact", "traitName": "email"},
    ],
}
MAPPINGS = [
    {"columnName": "email", "traitGroup": "Contact", "traitName": "email"},
    {"columnName": "phone", "traitGroup": "Contact", "traitName": "phone"},
    {"columnName": "first", "traitGroup": "Contact", "traitName": "firstName"},
]


def imports_url(store_id: str, *rest: str) -> str:
    return profiles_url(store_id, "Imports", *rest)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def create(api: Api, store_id: str, data: bytes, *, mappings: Any = None, **params: Any) -> Any:
    body = {"filename": "people.csv", "fileSize": len(data), "columnMappings": mappings or MAPPINGS}
    response = api.post(imports_url(store_id), json=body, params=params)
    assert response.status_code == 201, response.text
    return response.json()


def upload(api: Api, url: str, data: bytes, **headers: str) -> Any:
    # The signed URL is the credential: no account auth on purpose.
    return api.client.put(path_of(url), content=data, headers=headers)


def run_import(
    api: Api, db: Database, settings: Settings, store_id: str, data: bytes, **kw: Any
) -> dict[str, Any]:
    created = create(api, store_id, data, **kw)
    response = upload(api, created["url"], data)
    assert response.status_code == 200, response.text
    run_jobs(db, settings=settings)
    status = api.get(imports_url(store_id, created["importId"]))
    assert status.status_code == 200, status.text
    return dict(status.json())


def report(api: Api, store_id: str, import_id: str) -> list[list[str]]:
    response = api.get(imports_url(store_id, import_id, "Report"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def lookup(api: Api, store_id: str, id_type: str, value: str) -> list[str]:
    response = api.post(profiles_url(store_id, "Lookup"), json={"idType": id_type, "value": value})
    assert response.status_code == 200, response.text
    return list(response.json()["profiles"])


def traits_of(api: Api, store_id: str, profile_id: str) -> dict[str, Any]:
    response = api.get(profiles_url(store_id, profile_id))
    assert response.status_code == 200, response.text
    return dict(response.json()["traits"]["Contact"])


def test_documented_request_creates_an_import(api: Api) -> None:
    store_id = make_store(api)
    response = api.post(imports_url(store_id), json=DOCUMENTED)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"importId", "url"}
    assert body["importId"].startswith("mem_import_")
    status = api.get(imports_url(store_id, body["importId"])).json()
    assert status["status"] == "PENDING"
    assert status["filename"] == "profiles_import.csv"
    assert status["fileSize"] == 204800
    assert status["columnMappings"] == DOCUMENTED["columnMappings"]
    assert status["summary"] == {"errors": 0, "warnings": 0}


def test_import_end_to_end(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = (
        "\ufeffemail,phone,first\r\n"
        "ann@example.com,+14155550100,Ann\r\n"
        'BOB@Example.com , (415) 555-0101,"Bob\nSmith"\r\n'
        "ann@example.com,,Annie\r\n"  # same identity as row 2: one profile
        "carl@example.com,\\N,Carl\r\n"
    ).encode()
    status = run_import(api, db, settings, store_id, data)
    assert status["status"] == "COMPLETED", status
    assert status["counts"] == {
        "rows": 4,
        "processed": 4,
        "created": 3,
        "updated": 1,
        "merged": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert status["progress"] == 1
    assert not (settings.data_dir / "uploads" / store_id / f"{status['importId']}.csv").exists()
    assert status["summary"]["errors"] == 0
    # " BOB@Example.com " trimmed and normalized, the phone normalized: warnings.
    assert status["summary"]["warnings"] >= 2
    (ann,) = lookup(api, store_id, "email", "ann@example.com")
    # An empty cell writes "" (DESIGN §7); the identifier stays.
    assert traits_of(api, store_id, ann) == {
        "email": "ann@example.com",
        "phone": "",
        "firstName": "Annie",
    }
    assert lookup(api, store_id, "phone", "+14155550100") == [ann]
    (bob,) = lookup(api, store_id, "phone", "+14155550101")
    assert traits_of(api, store_id, bob)["firstName"] == "Bob\nSmith"
    assert lookup(api, store_id, "email", "bob@example.com") == [bob]
    lines = report(api, store_id, status["importId"])
    assert lines[0] == ["row", "column", "code", "message", "value", "severity"]
    assert {(line[0], line[1], line[5]) for line in lines[1:]} >= {
        ("3", "email", "warning"),
        ("3", "phone", "warning"),
    }


def test_rows_bridging_two_profiles_merge(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = b"email,phone,first\na@example.com,,A\n,+14155550111,B\na@example.com,+14155550111,AB\n"
    status = run_import(api, db, settings, store_id, data)
    assert status["status"] == "COMPLETED", status
    counts = status["counts"]
    assert counts["rows"] == 3
    assert (
        counts["created"]
        + counts["updated"]
        + counts["merged"]
        + counts["unchanged"]
        + counts["failed"]
        == 3
    )
    profiles = lookup(api, store_id, "email", "a@example.com")
    assert profiles == lookup(api, store_id, "phone", "+14155550111")
    assert len(profiles) == 1


def test_reimport_is_unchanged(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = b"email,phone,first\nz@example.com,+14155550122,Zed\n"
    assert run_import(api, db, settings, store_id, data)["counts"]["created"] == 1
    again = run_import(api, db, settings, store_id, data)
    assert again["counts"]["unchanged"] == 1, again


def test_bad_rows_fail_alone_with_a_report(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = (
        b"email,phone,first\n"
        b"ok@example.com,,Ok\n"
        b",,NoId\n"
        b"not-an-email,,Bad\n"
        b"x@example.com,123,BadPhone\n"
        b"only,two\n"
    )
    status = run_import(api, db, settings, store_id, data)
    assert status["status"] == "COMPLETED", status
    assert status["counts"]["created"] == 1
    assert status["counts"]["failed"] == 4
    assert status["summary"]["errors"] == 4
    lines = report(api, store_id, status["importId"])
    codes = {(line[0], line[2]) for line in lines[1:] if line[5] == "error"}
    assert codes == {
        ("3", "NO_IDENTIFIER"),
        ("4", "INVALID_IDENTIFIER"),
        ("5", "INVALID_IDENTIFIER"),
        ("6", "RAGGED_ROW"),
    }


def test_more_than_100_bad_rows_fail_the_import(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    rows = [b"email,phone,first", b"good@example.com,,G"]
    rows += [f",,bad{n}".encode() for n in range(101)]
    status = run_import(api, db, settings, store_id, b"\n".join(rows) + b"\n")
    assert status["status"] == "FAILED", status
    assert "more than 100 rows failed" in status["message"]
    assert status["counts"]["failed"] == 101
    lines = report(api, store_id, status["importId"])
    assert len([line for line in lines[1:] if line[5] == "error"]) == 101
    # The uploaded file goes once the import is over, failed or not.
    assert not (settings.data_dir / "uploads" / store_id / f"{status['importId']}.csv").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\n", "the file is empty"),
        (b"email,email,first\n", "twice"),
        (b"mail,phone,first\na@example.com,,A\n", "no column 'email'"),
        (b"email,phone,first\n\xff\xfe,,A\n", "not UTF-8"),
        (b'email,phone,first\n"a@example.com,,A\n', "not valid CSV"),
        (",".join(f"c{n}" for n in range(101)).encode() + b"\n", "at most 100"),
    ],
    ids=["empty", "duplicate-header", "missing-column", "not-utf8", "open-quote", "101-columns"],
)
def test_unreadable_files_fail(
    api: Api, db: Database, settings: Settings, data: bytes, message: str
) -> None:
    store_id = make_store(api)
    status = run_import(api, db, settings, store_id, data)
    assert status["status"] == "FAILED", status
    assert message in status["message"]


def test_header_only_file_completes_empty(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    status = run_import(api, db, settings, store_id, b"email,phone,first\r\n")
    assert status["status"] == "COMPLETED"
    assert status["counts"]["rows"] == 0


def test_dry_run_writes_nothing(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = b"email,phone,first\ndry@example.com,,D\n,,none\n"
    status = run_import(api, db, settings, store_id, data, dryRun="true")
    assert status["status"] == "COMPLETED", status
    assert status["dryRun"] is True
    assert status["counts"]["created"] == 1
    assert status["counts"]["failed"] == 1
    assert lookup(api, store_id, "email", "dry@example.com") == []
    assert [line[2] for line in report(api, store_id, status["importId"])[1:]] == ["NO_IDENTIFIER"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filename": "x" * 256}, "filename"),
        ({"fileSize": 0}, "fileSize"),
        ({"fileSize": 100 * 1024 * 1024 + 1}, "fileSize"),
        ({"columnMappings": MAPPINGS[:1]}, "columnMappings"),
        (
            {"columnMappings": [dict(MAPPINGS[0], columnName=f"c{n}") for n in range(101)]},
            "columnMappings",
        ),
        ({"columnMappings": [MAPPINGS[0], dict(MAPPINGS[1], columnName="email")]}, "mapped twice"),
        ({"columnMappings": [MAPPINGS[0], dict(MAPPINGS[1], traitName="email")]}, "two columns"),
        (
            {"columnMappings": [MAPPINGS[0], dict(MAPPINGS[2], traitGroup="Nope")]},
            "no trait group 'Nope'",
        ),
        (
            {"columnMappings": [MAPPINGS[0], dict(MAPPINGS[2], traitName="nope")]},
            "has no trait 'nope'",
        ),
        (
            {"columnMappings": [MAPPINGS[2], dict(MAPPINGS[2], columnName="x", traitName="city")]},
            "promoted to an identifier",
        ),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_create_validation(api: Api, change: dict[str, Any], message: str) -> None:
    store_id = make_store(api)
    body = {"filename": "a.csv", "fileSize": 10, "columnMappings": MAPPINGS} | change
    response = api.post(imports_url(store_id), json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_unknown_store_and_import(api: Api) -> None:
    missing = "mem_store_00000000000000000000000000"
    response = api.post(imports_url(missing), json=DOCUMENTED)
    assert response.status_code == 404
    assert response.json()["code"] == 520041
    store_id = make_store(api)
    response = api.get(imports_url(store_id, "mem_import_00000000000000000000000000"))
    assert response.status_code == 404
    assert api.get(imports_url(store_id, "nope")).status_code == 400


def test_list_newest_first_paginated(api: Api) -> None:
    store_id = make_store(api)
    made = [create(api, store_id, b"x")["importId"] for _ in range(3)]
    page = api.get(imports_url(store_id), params={"pageSize": 2}).json()
    assert page["imports"] == made[::-1][:2]
    rest = api.get(imports_url(store_id), params={"pageToken": page["meta"]["nextToken"]}).json()
    assert rest["imports"] == made[:1]


def test_upload_url_checks(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    data = b"email,phone,first\nu@example.com,,U\n"
    created = create(api, store_id, data)
    url = created["url"]
    tampered = url.replace("signature=", "signature=0")
    response = upload(api, tampered, data)
    assert response.status_code == 403
    assert response.json()["code"] == 20403
    # Wrong size: refused, and the import still waits for its file.
    short = upload(api, url, data[:-1])
    assert short.status_code == 400, short.text
    assert "fileSize" in short.json()["message"]
    status = api.get(imports_url(store_id, created["importId"])).json()
    assert status["status"] == "PENDING"
    assert upload(api, url, data).status_code == 200
    again = upload(api, url, data)
    assert again.status_code == 409
    run_jobs(db, settings=settings)
    assert api.get(imports_url(store_id, created["importId"])).json()["status"] == "COMPLETED"


def test_expired_upload_url(api: Api, db: Database, settings: Settings) -> None:

    store_id = make_store(api)
    data = b"email,phone,first\ne@example.com,,E\n"
    created = create(api, store_id, data)
    past = utcnow() - dt.timedelta(hours=1)
    with db.transaction() as session:
        session.execute(
            update(ProfileImport)
            .where(ProfileImport.id == created["importId"])
            .values(upload_expires_at=past)
        )
    # The URL was signed for the old expiry: refused either way.
    assert upload(api, created["url"], data).status_code == 403
    with db.transaction() as session:
        row = session.get(ProfileImport, (store_id, created["importId"]))
        assert row is not None
        expired_url = LocalStorage(settings).upload_url(upload_of(row), "http://convmem.test")
    response = upload(api, expired_url, data)
    assert response.status_code == 403
    assert "expired" in response.json()["message"]
    # A worker fails the import the URL never delivered.
    with db.transaction() as session:
        session.execute(
            update(Operation).where(Operation.store_id == store_id).values(run_after=past)
        )
    run_jobs(db, settings=settings)
    status = api.get(imports_url(store_id, created["importId"])).json()
    assert status["status"] == "FAILED"
    assert "not uploaded" in status["message"]


def test_a_conflicting_row_fails_alone_while_bulk_stays_all_or_nothing(
    api: Api, db: Database, settings: Settings
) -> None:
    store_id = make_store(api)
    settings_url = f"/v1/ControlPlane/Stores/{store_id}/IdentityResolutionSettings"
    identity = api.get(settings_url).json()
    # phone stays unique but no longer merges: a phone held by another profile conflicts.
    identity["matchingRules"] = [r for r in identity["matchingRules"] if r != "phone"]
    assert api.put(settings_url, json=identity).status_code == 202
    holder = make_profile(api, store_id, email="holder@example.com", phone="+14155550150")
    items = [
        {"traits": {"Contact": {"email": "other@example.com", "phone": "+14155550150"}}},
        {"traits": {"Contact": {"email": "fine@example.com"}}},
    ]
    bulk = api.put(profiles_url(store_id, "Bulk"), json={"profiles": items})
    assert bulk.status_code == 409, bulk.text
    assert lookup(api, store_id, "email", "fine@example.com") == []

    data = b"email,phone,first\nother@example.com,+14155550150,O\nfine@example.com,,F\n"
    status = run_import(api, db, settings, store_id, data)
    assert status["status"] == "COMPLETED", status
    assert status["counts"]["failed"] == 1
    assert status["counts"]["created"] == 1
    (line,) = [line for line in report(api, store_id, status["importId"])[1:] if line[5] == "error"]
    assert line[0] == "2" and line[2] == "IDENTIFIER_CONFLICT" and holder in line[3]
    assert lookup(api, store_id, "email", "other@example.com") == []
    assert len(lookup(api, store_id, "email", "fine@example.com")) == 1


def test_cells_are_coerced_to_trait_types(api: Api, db: Database, settings: Settings) -> None:
    store_id = make_store(api)
    group = {
        "displayName": "Loyalty",
        "traits": {
            "points": {"dataType": "NUMBER"},
            "vip": {"dataType": "BOOLEAN"},
            "tags": {"dataType": "ARRAY"},
        },
    }
    assert api.post(f"/v1/ControlPlane/Stores/{store_id}/TraitGroups", json=group).status_code
    mappings = [
        MAPPINGS[0],
        {"columnName": "points", "traitGroup": "Loyalty", "traitName": "points"},
        {"columnName": "vip", "traitGroup": "Loyalty", "traitName": "vip"},
        {"columnName": "tags", "traitGroup": "Loyalty", "traitName": "tags"},
    ]
    data = (
        b"email,points,vip,tags\n"
        b"n1@example.com,42,yes,a|b\n"
        b'n2@example.com,"1,234.5",false,"[""x"", 2]"\n'
        b"n3@example.com,,,\n"
        b"n4@example.com,lots,true,\n"
        b"n5@example.com,1,maybe,\n"
    )
    status = run_import(api, db, settings, store_id, data, mappings=mappings)
    assert status["counts"]["created"] == 3 and status["counts"]["failed"] == 2, status

    def loyalty(email: str) -> dict[str, Any]:
        (pid,) = lookup(api, store_id, "email", email)
        body = api.get(profiles_url(store_id, pid)).json()
        return dict(body["traits"].get("Loyalty", {}))

    assert loyalty("n1@example.com") == {"points": 42, "vip": True, "tags": ["a", "b"]}
    assert loyalty("n2@example.com") == {"points": 1234.5, "vip": False, "tags": ["x", 2]}
    assert loyalty("n3@example.com") == {}  # empty cells of non-strings write nothing
    errors = {
        line[0]: line[3]
        for line in report(api, store_id, status["importId"])[1:]
        if line[5] == "error"
    }
    assert "not a number" in errors["5"] and "not a boolean" in errors["6"]


def test_uploads_are_not_bound_by_the_json_body_limit(db: Database, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from convmem.app import create_app
    from tests.conftest import new_account

    small = settings.model_copy(update={"max_body_bytes": 1024})
    with TestClient(create_app(small, db=db), base_url="http://convmem.test") as client:
        api = Api(client, *new_account(db))
        store_id = make_store(api)
        rows = [f"big{n}@example.com,,Name{n}" for n in range(2000)]
        data = ("email,phone,first\n" + "\n".join(rows) + "\n").encode()
        assert len(data) > 40 * 1024
        status = run_import(api, db, small, store_id, data)
        assert status["status"] == "COMPLETED", status
        assert status["counts"]["created"] == 2000


def test_deleting_the_store_leaves_no_upload_behind(
    api: Api, db: Database, settings: Settings
) -> None:
    store_id = make_store(api)
    data = b"email,phone,first\ngone@example.com,,G\n"
    created = create(api, store_id, data)
    assert upload(api, created["url"], data).status_code == 200
    file = settings.data_dir / "uploads" / store_id / f"{created['importId']}.csv"
    assert file.exists()
    assert api.delete(f"/v1/ControlPlane/Stores/{store_id}").status_code == 202
    run_jobs(db, settings=settings)
    assert not file.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/Uploads/Imports/mem_store_%00/mem_import_00000000000000000000000000",
        "/v1/Uploads/Imports/..%2F..%2Fetc/mem_import_00000000000000000000000000",
        "/v1/Uploads/Imports/mem_store_00000000000000000000000000/nope",
    ],
)
def test_hostile_upload_paths_are_not_found(api: Api, path: str) -> None:
    response = api.client.put(path + "?expires=1&signature=x", content=b"x")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == 20404
