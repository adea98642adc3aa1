"""The official `twilio` SDK (pinned in pyproject) against a live `convmem serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.rest.memory.v1.identity_resolution_setting import IdentityResolutionSettingList
from twilio.rest.memory.v1.store import StoreList
from twilio.rest.memory.v1.trait_group import TraitGroupList

from tests.factories import ALYSSA
from tests.live import ACCOUNT_SID, AUTH_TOKEN, Process, start_server

# Each live server's data directory, by its URL.
DATA_DIRS: dict[str, Path] = {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    process: Process
    data_dir = tmp_path_factory.mktemp("sdk")
    process, url = start_server(data_dir, database_url=url, CONVMEM_JOB_POLL_SECONDS="0.1")
    DATA_DIRS[url] = data_dir
    yield url
    process.stop()


@pytest.fixture
def client(server: str) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.memory.base_url = server
    return client


def wait_for(client: Client, status_url: str) -> object:
    op_id = status_url.rsplit("/", 1)[-1]
    for _ in range(100):
        op = client.memory.v1.operations(op_id).fetch()
        if op.status in ("COMPLETED", "FAILED"):
            return op
        time.sleep(0.1)
    raise AssertionError(f"operation {op_id} did not finish")


def create_store(client: Client, name: str) -> str:
    created = client.memory.v1.stores.create(
        service_request=StoreList.ServiceRequest({"displayName": name, "description": "SDK test"})
    )
    assert created.message and created.status_url
    op = wait_for(client, created.status_url)
    assert op.status == "COMPLETED"  # type: ignore[attr-defined]
    store_id: str = op.result["id"]  # type: ignore[attr-defined]
    return store_id


def test_stores_through_the_sdk(client: Client) -> None:
    store_id = create_store(client, "sdk-store")
    store = client.memory.v1.stores(store_id).fetch()
    assert store.display_name == "sdk-store"
    assert store.status == "ACTIVE"
    assert store.version == 1

    patched = client.memory.v1.stores(store_id).patch(
        StoreList.PatchStoreRequest({"description": "changed"})
    )
    assert patched.status_url
    assert client.memory.v1.stores(store_id).fetch().description == "changed"

    for n in range(3):
        create_store(client, f"sdk-page-{n}")
    listed = list(client.memory.v1.stores.stream(page_size=2))
    assert store_id in listed
    assert len(listed) == len(set(listed)) >= 4
    assert client.memory.v1.stores.list(page_size=2, limit=3) == listed[:3]

    assert client.memory.v1.stores(store_id).delete()
    with pytest.raises(TwilioRestException) as error:
        client.memory.v1.stores(store_id).fetch()
    assert error.value.status == 404
    assert error.value.code == 520041


def test_trait_groups_through_the_sdk(client: Client) -> None:
    store_id = create_store(client, "sdk-traits")
    groups = client.memory.v1.trait_groups(store_id)
    request = TraitGroupList.TraitGroupRequest(
        {
            "displayName": "Loyalty",
            "description": "Loyalty program",
            "traits": {
                "points": {
                    "dataType": "NUMBER",
                    "description": "Points",
                    "validationRule": {"ruleType": "NUMBER", "min": 0},
                },
                "tier": {"dataType": "STRING"},
            },
        }
    )
    created = groups.create(trait_group_request=request)
    assert wait_for(client, created.status_url).status == "COMPLETED"  # type: ignore[attr-defined]

    fetched = client.memory.v1.trait_groups(store_id, "Loyalty").fetch()
    assert fetched.trait_group["displayName"] == "Loyalty"
    assert fetched.trait_group["traits"]["points"]["validationRule"] == {
        "ruleType": "NUMBER",
        "min": 0,
    }

    names = [g.display_name for g in groups.stream(include_traits=True)]
    assert sorted(names) == ["Contact", "Loyalty"]

    patch = TraitGroupList.PatchTraitGroupRequest(
        {"traits": {"tier": {"dataType": ""}, "since": {"dataType": "STRING"}}}
    )
    client.memory.v1.trait_groups(store_id, "Loyalty").patch(patch)
    traits = client.memory.v1.trait_groups(store_id, "Loyalty").fetch().trait_group["traits"]
    assert set(traits) == {"points", "since"}

    with pytest.raises(TwilioRestException) as error:
        client.memory.v1.trait_groups(store_id, "Contact").delete()
    assert error.value.code == 520050
    assert client.memory.v1.trait_groups(store_id, "Loyalty").delete()


def test_identity_resolution_settings_through_the_sdk(client: Client) -> None:
    store_id = create_store(client, "sdk-identity")
    settings = client.memory.v1.identity_resolution_settings(store_id).fetch()
    assert settings.matching_rules == ["email", "phone", "whatsapp", "chat"]
    core = IdentityResolutionSettingList.IdentityResolutionSettingsCore(
        {
            "identifierConfigs": [
                {"idType": "email", "normalization": "email"},
                {"idType": "phone", "normalization": "phone", "limit": 5, "limitPolicy": "lifo"},
                {"idType": "crmId", "normalization": "none"},
            ],
            "matchingRules": ["crmId", "email", "phone"],
        }
    )
    updated = client.memory.v1.identity_resolution_settings(store_id).update(core)
    assert wait_for(client, updated.status_url).status == "COMPLETED"  # type: ignore[attr-defined]
    after = client.memory.v1.identity_resolution_settings(store_id).fetch()
    assert after.matching_rules == ["crmId", "email", "phone"]
    assert after.version == 2

    with pytest.raises(TwilioRestException) as error:
        client.memory.v1.identity_resolution_settings(store_id).update(
            IdentityResolutionSettingList.IdentityResolutionSettingsCore(
                {"identifierConfigs": [{"idType": "email"}], "matchingRules": ["nope"]}
            )
        )
    assert error.value.status == 400
    assert error.value.code == 520046


def test_bad_credentials_through_the_sdk(server: str) -> None:
    client = Client(ACCOUNT_SID, "wrong")
    client.memory.base_url = server
    # The SDK reports failed list pages as a plain TwilioException with the response.
    with pytest.raises(TwilioException) as error:
        client.memory.v1.stores.list()
    assert error.value.args[1].status_code == 401


def test_server_data_dir_holds_the_database(
    server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = Path(tmp_path_factory.getbasetemp())
    assert list(data.glob("sdk*/convmem.db"))


ALYSSA_TRAITS = ALYSSA["traits"]


def test_profiles_through_the_sdk(client: Client) -> None:
    from twilio.rest.memory.v1.bulk import BulkList
    from twilio.rest.memory.v1.identifier import IdentifierList
    from twilio.rest.memory.v1.lookup import LookupList
    from twilio.rest.memory.v1.profile import ProfileList

    v1 = client.memory.v1
    store_id = create_store(client, "sdk-profiles")
    created = v1.profiles(store_id).create(ProfileList.ProfileData({"traits": ALYSSA_TRAITS}))
    assert created.message
    profile_id = created.id
    assert profile_id.startswith("mem_profile_")

    profile = v1.profiles(store_id, profile_id).fetch()
    assert profile.id == profile_id
    assert profile.traits == ALYSSA_TRAITS
    only = v1.profiles(store_id, profile_id).fetch(trait_groups="Contact")
    assert only.traits["Contact"]["city"] == "San Francisco"

    # (The SDK drops None values from bodies, so it cannot send `null` to remove a trait.)
    v1.profiles(store_id, profile_id).patch(
        ProfileList.ProfilePatch({"traits": {"Contact": {"firstName": "Ally"}}})
    )
    contact = v1.profiles(store_id, profile_id).fetch().traits["Contact"]
    assert contact["firstName"] == "Ally"

    traits = v1.traits(store_id, profile_id).list(page_size=3)
    assert len(traits) == 9
    assert {t.trait_group for t in traits} == {"Contact"}
    assert {t.name for t in traits} >= {"firstName", "email"}

    v1.bulk(store_id).update(
        BulkList.UpdateProfilesBulkRequest(
            {
                "profiles": [
                    {"traits": {"Contact": {"email": "john.doe@example.com", "firstName": "John"}}},
                    {"traits": {"Contact": {"email": "jane@example.com", "firstName": "Jane"}}},
                ]
            }
        )
    )
    listed = list(v1.profiles(store_id).stream(page_size=2))
    assert len(listed) == 3 and profile_id in listed

    identifiers = v1.identifiers(store_id, profile_id)
    identifiers.create(IdentifierList.Identifier({"idType": "chat", "value": "alyssa-42"}))
    sets = {i.id_type: i.values for i in identifiers.list()}
    assert sets == {
        "email": ["alyssa.mock@example.com"],
        "phone": ["+13175551234"],
        "chat": ["alyssa-42"],
    }
    phone = v1.identifiers(store_id, profile_id, "phone")
    assert phone.fetch().values == ["+13175551234"]
    phone.patch(
        IdentifierList.IdentifierUpdate(
            {"idType": "phone", "oldValue": "+13175551234", "newValue": "317-555-4321"}
        )
    )
    assert phone.fetch().values == ["+13175554321"]
    assert v1.identifiers(store_id, profile_id, "chat").delete(remove_all=True)

    found = v1.lookup(store_id).create(
        LookupList.Identifier({"idType": "phone", "value": "(317) 555-4321"})
    )
    assert found.normalized_value == "+13175554321"
    assert found.profiles == [profile_id]

    assert v1.profiles(store_id, profile_id).delete()
    with pytest.raises(TwilioRestException) as error:
        v1.profiles(store_id, profile_id).fetch()
    assert error.value.status == 404
    assert error.value.code == 520009


def test_a_merged_away_profile_through_the_sdk(client: Client) -> None:
    """What docs/identity.md tells SDK users: the SDK does not follow the 301,
    and the canonical id is in the last response's header, or found by Lookup."""
    from twilio.rest.memory.v1.lookup import LookupList
    from twilio.rest.memory.v1.profile import ProfileList

    v1 = client.memory.v1
    store_id = create_store(client, "sdk-merges")
    first = (
        v1.profiles(store_id)
        .create(ProfileList.ProfileData({"traits": {"Contact": {"email": "m1@example.com"}}}))
        .id
    )
    second = (
        v1.profiles(store_id)
        .create(ProfileList.ProfileData({"traits": {"Contact": {"phone": "+14155550199"}}}))
        .id
    )
    merged = (
        v1.profiles(store_id)
        .create(
            ProfileList.ProfileData(
                {"traits": {"Contact": {"email": "m1@example.com", "phone": "+14155550199"}}}
            )
        )
        .id
    )
    assert merged == min(first, second)
    gone = max(first, second)
    moved = v1.profiles(store_id, gone).fetch()
    assert moved.id is None and moved.traits is None
    raw = client.request("GET", f"{client.memory.base_url}/v1/Stores/{store_id}/Profiles/{gone}")
    assert raw.status_code == 301
    assert raw.headers["Canonical-Profile-Id"] == merged
    found = v1.lookup(store_id).create(
        LookupList.Identifier({"idType": "phone", "value": "+14155550199"})
    )
    assert found.profiles == [merged]


def test_imports_through_the_sdk(client: Client) -> None:
    import httpx2 as httpx
    from twilio.rest.memory.v1.import_ import ImportList

    v1 = client.memory.v1
    store_id = create_store(client, "sdk-imports")
    data = (
        b"email_address,first_name,last_name\nsdk@example.com,Sam,Doe\nsdk2@example.com,Ann,Lee\n"
    )
    created = v1.imports(store_id).create(
        ImportList.CreateProfilesImportV2Request(
            {
                "filename": "profiles_import.csv",
                "fileSize": len(data),
                "columnMappings": [
                    {"columnName": "first_name", "traitGroup": "Contact", "traitName": "firstName"},
                    {"columnName": "last_name", "traitGroup": "Contact", "traitName": "lastName"},
                    {"columnName": "email_address", "traitGroup": "Contact", "traitName": "email"},
                ],
            }
        )
    )
    assert created.import_id and created.import_id.startswith("mem_import_")
    assert created.url
    assert httpx.put(created.url, content=data).status_code == 200
    for _ in range(100):
        status = v1.imports(store_id, created.import_id).fetch()
        if status.status in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.1)
    assert status.status == "COMPLETED"
    assert status.filename == "profiles_import.csv"
    assert status.file_size == len(data)
    assert status.summary == {"errors": 0, "warnings": 0}
    assert list(v1.imports(store_id).list()) == [created.import_id]
    from twilio.rest.memory.v1.lookup import LookupList

    match = v1.lookup(store_id).create(
        LookupList.Identifier({"idType": "email", "value": "sdk@example.com"})
    )
    assert len(match.profiles) == 1


def test_data_mappings_through_the_sdk(client: Client, server: str) -> None:
    import httpx2 as httpx
    from twilio.rest.memory.v1.data_mapping import DataMappingList

    v1 = client.memory.v1
    store_id = create_store(client, "sdk-mappings")
    datasets = DATA_DIRS[server] / "datasets"
    datasets.mkdir(exist_ok=True)
    (datasets / "crm.csv").write_text("primary_email,first\nsdk@example.com,Sam\n")
    dataset = httpx.post(
        f"{server}/v1/ControlPlane/Datasets",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        json={
            "displayName": f"crm-{store_id[-6:]}",
            "source": {"type": "CSV", "location": "crm.csv"},
        },
    ).json()
    created = v1.data_mappings(store_id).create(
        DataMappingList.CreateDataMappingInput(
            {
                "displayName": "crm-contacts",
                "mappingTo": {
                    "type": "TRAITS",
                    "mappings": [
                        {
                            "expression": "primary_email",
                            "traitGroup": "Contact",
                            "traitName": "email",
                        }
                    ],
                },
                "mappingFrom": {"type": "DATASET_WAREHOUSE", "datasetId": dataset["id"]},
            }
        )
    )
    assert created.message and created.status_url
    op = wait_for(client, created.status_url)
    mapping_id = op.result["id"]  # type: ignore[attr-defined]
    mapping = v1.data_mappings(store_id, mapping_id).fetch()
    assert mapping.display_name == "crm-contacts"
    assert mapping.is_enabled is True
    assert mapping.version == 1
    assert mapping.mapping_from == {"type": "DATASET_WAREHOUSE", "datasetId": dataset["id"]}
    assert mapping.mapping_to["mappings"][0]["expression"] == "primary_email"  # type: ignore[index]

    ingress = v1.data_mappings(store_id).create(
        DataMappingList.CreateDataMappingInput(
            {
                "displayName": "web",
                "mappingTo": {
                    "type": "TRAITS",
                    "mappings": [
                        {"expression": "mail", "traitGroup": "Contact", "traitName": "email"}
                    ],
                },
                "mappingFrom": {"type": "INGRESS", "columns": ["mail"]},
            }
        )
    )
    ingress_id = wait_for(client, ingress.status_url).result["id"]  # type: ignore[attr-defined]
    listed = [m.id for m in v1.data_mappings(store_id).stream(page_size=1)]
    assert listed == [ingress_id, mapping_id]
    assert [m.id for m in v1.data_mappings(store_id).list(type="INGRESS")] == [ingress_id]

    patched = v1.data_mappings(store_id, mapping_id).patch(
        DataMappingList.DataMappingCore({"displayName": "crm-contacts-2", "isEnabled": False})
    )
    assert patched.status_url
    after = v1.data_mappings(store_id, mapping_id).fetch()
    assert (after.display_name, after.is_enabled, after.version) == ("crm-contacts-2", False, 2)

    assert v1.data_mappings(store_id, ingress_id).delete()
    with pytest.raises(TwilioRestException) as error:
        v1.data_mappings(store_id, ingress_id).fetch()
    assert error.value.status == 404
    assert error.value.code == 520048


def test_memories_through_the_sdk(client: Client) -> None:
    from twilio.rest.memory.v1.conversation_summary import ConversationSummaryList
    from twilio.rest.memory.v1.observation import ObservationList
    from twilio.rest.memory.v1.profile import ProfileList
    from twilio.rest.memory.v1.recall import RecallList

    v1 = client.memory.v1
    store_id = create_store(client, "sdk-memories")
    profile_id = (
        v1.profiles(store_id)
        .create(ProfileList.ProfileData({"traits": {"Contact": {"email": "memory@example.com"}}}))
        .id
    )
    created = v1.observations(store_id, profile_id).create(
        ObservationList.CreateObservationsRequest(
            {
                "observations": [
                    {
                        "content": "Customer expressed frustration with billing process.",
                        "source": "customer_service",
                        "occurredAt": "2025-01-15T14:30:00Z",
                    },
                    {
                        "content": "Wants the order 88-ZZ delivered on Friday.",
                        "source": "chat_transcript",
                        "occurredAt": "2025-01-15T15:30:00Z",
                        "conversationIds": ["conv_conversation_00000000000000000000000000"],
                    },
                ]
            }
        )
    )
    assert created.message == "Observations creation accepted"
    observations = list(v1.observations(store_id, profile_id).stream(page_size=1))
    assert [o.source for o in observations] == ["chat_transcript", "customer_service"]
    only = list(
        v1.observations(store_id, profile_id).list(
            conversation_id="conv_conversation_00000000000000000000000000"
        )
    )
    assert [o.id for o in only] == [observations[0].id]
    one = v1.observations(store_id, profile_id, observations[1].id)
    assert one.fetch().content == "Customer expressed frustration with billing process."
    one.patch(ObservationList.ObservationBase({"content": "Billing is clear now."}))
    assert one.fetch().content == "Billing is clear now."
    revisions = list(v1.revisions(store_id, profile_id, observations[1].id).stream())
    assert [r.content for r in revisions] == [
        "Customer expressed frustration with billing process."
    ]

    v1.conversation_summaries(store_id, profile_id).create(
        ConversationSummaryList.CreateSummariesRequest(
            {
                "summaries": [
                    {
                        "conversationId": "conv_conversation_00000000000000000000000000",
                        "content": "Discussed delivery of order 88-ZZ.",
                        "source": "conversational_intelligence",
                        "occurredAt": "2025-01-15T15:00:00Z",
                    }
                ]
            }
        )
    )
    (summary,) = list(v1.conversation_summaries(store_id, profile_id).stream())
    assert summary.content == "Discussed delivery of order 88-ZZ."
    one_summary = v1.conversation_summaries(store_id, profile_id, summary.id)
    one_summary.patch(ConversationSummaryList.SummaryCorePatch({"source": "summary_followup"}))
    assert one_summary.fetch().source == "summary_followup"
    recalled = v1.recall(store_id, profile_id).create(
        RecallList.MemoryRetrievalRequest({"query": "88-ZZ delivery", "observationsLimit": 5})
    )
    assert recalled.observations[0]["content"] == "Wants the order 88-ZZ delivered on Friday."  # type: ignore[index]
    assert recalled.summaries[0]["id"] == summary.id  # type: ignore[index]
    assert recalled.communications == []
    assert one_summary.delete()
    with pytest.raises(TwilioRestException) as gone:
        one_summary.fetch()
    assert gone.value.status == 404
    assert one.delete()
    with pytest.raises(TwilioRestException) as error:
        one.fetch()
    assert error.value.code == 520003
