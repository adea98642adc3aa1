"""Spec fuzzing (schemathesis) against a live `convmem serve` on each backend.

Every implemented operation of ../spec/twilio_memory_v1.json gets generated
requests, valid and invalid; none may answer 5xx, and every answer the spec
documents must match its schema. The number of examples per operation is
small by default so `make test` stays quick; `make fuzz` runs many more
(CONVMEM_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import random
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import basic
from tests.live import ACCOUNT_SID, AUTH_TOKEN, start_server
from tests.spec import SPEC_PATH

EXAMPLES = int(os.environ.get("CONVMEM_FUZZ_EXAMPLES", "6"))
# Operations convmem implements so far; the rest of the spec is future work.
IMPLEMENTED = [
    "/v1/ControlPlane/Stores",
    "/v1/ControlPlane/Stores/{storeId}",
    "/v1/ControlPlane/Stores/{storeId}/IdentityResolutionSettings",
    "/v1/ControlPlane/Stores/{storeId}/TraitGroups",
    "/v1/ControlPlane/Stores/{storeId}/TraitGroups/{traitGroupName}",
    "/v1/ControlPlane/Stores/{storeId}/DataMappings",
    "/v1/ControlPlane/Stores/{storeId}/DataMappings/{dataMappingId}",
    "/v1/ControlPlane/Operations/{operationId}",
    "/v1/Stores/{storeId}/Profiles",
    "/v1/Stores/{storeId}/Profiles/Bulk",
    "/v1/Stores/{storeId}/Profiles/Lookup",
    "/v1/Stores/{storeId}/Profiles/Imports",
    "/v1/Stores/{storeId}/Profiles/Imports/{importId}",
    "/v1/Stores/{storeId}/Profiles/{profileId}",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Traits",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Identifiers",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Identifiers/{idType}",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Observations",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Observations/{observationId}",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Observations/{observationId}/Revisions",
    "/v1/Stores/{storeId}/Profiles/{profileId}/ConversationSummaries",
    "/v1/Stores/{storeId}/Profiles/{profileId}/ConversationSummaries/{summaryId}",
    "/v1/Stores/{storeId}/Profiles/{profileId}/Recall",
]
schema = schemathesis.openapi.from_path(SPEC_PATH).include(
    path_regex="^(" + "|".join(re.escape(p) for p in IMPLEMENTED) + ")$"
)


class Target:
    def __init__(self, base: str, store_id: str, profile_id: str) -> None:
        self.base, self.store_id, self.profile_id = base, store_id, profile_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    data_dir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    server, base = start_server(data_dir, database_url=url, CONVMEM_ACCESS_LOG="false")
    try:
        with httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN)) as client:
            name = f"fuzz-{secrets.token_hex(3)}"
            op = client.post("/v1/ControlPlane/Stores", json={"displayName": name})
            store_id = client.get(op.headers["Location"]).json()["result"]["id"]
            profile = client.post(
                f"/v1/Stores/{store_id}/Profiles",
                json={"traits": {"Contact": {"email": "fuzz@example.com", "firstName": "F"}}},
            )
            yield Target(base, store_id, profile.json()["id"])
            # The server is still healthy after everything the fuzzer sent.
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
        assert "Traceback" not in server.output(), server.output()[-3000:]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_5xx_and_answers_match_the_spec(case: Any, target: Target) -> None:
    # Most requests aim at a store and profile that exist, so the fuzzer gets
    # past the 404s and exercises the operations themselves.
    params = case.path_parameters or {}
    if "storeId" in params and random.random() < 0.85:
        params["storeId"] = target.store_id
    if "profileId" in params and random.random() < 0.7:
        params["profileId"] = target.profile_id
    case.call_and_validate(
        base_url=target.base,
        headers=basic(ACCOUNT_SID, AUTH_TOKEN),
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
