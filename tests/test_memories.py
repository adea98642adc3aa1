"""Observations, revisions, conversation summaries and Recall over HTTP on both
backends, responses validated against the spec."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from convmem.app import create_app
from convmem.kit.db import Database
from convmem.settings import Settings
from tests.conftest import Api, new_account
from tests.factories import make_profile, make_store, profiles_url

CONV = "conv_conversation_01h455vb4pex5vsknk084sn02q"
CONV2 = "conv_conversation_01h455vb4pex5vsknk084sn02r"
SINGLE = {
    "observations": [
        {
            "content": "Customer expressed frustration with billing process during call on "
            "2025-01-15. Mentioned difficulty understanding charges.",
            "source": "customer_service",
            "occurredAt": "2025-01-15T14:30:00Z",
        }
    ]
}
BATCH = {
    "observations": [
        SINGLE["observations"][0],
        {
            "content": "Customer: 'I love the new feature you added.' Agent: 'Thank you for the "
            "feedback, we're glad you're enjoying it.'",
            "source": "chat_transcript",
            "occurredAt": "2025-01-15T15:30:00Z",
            "conversationIds": ["conv_conversation_00000000000000000000000000"],
        },
    ]
}


def observations_url(store_id: str, profile_id: str, *rest: str) -> str:
    return profiles_url(store_id, profile_id, "Observations", *rest)


def summaries_url(store_id: str, profile_id: str, *rest: str) -> str:
    return profiles_url(store_id, profile_id, "ConversationSummaries", *rest)


def observe(api: Api, store_id: str, profile_id: str, *items: dict[str, Any]) -> None:
    response = api.post(observations_url(store_id, profile_id), json={"observations": list(items)})
    assert response.status_code == 202, response.text


def note(content: str, occurred: str = "2025-01-15T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"content": content, "source": "test", "occurredAt": occurred, **extra}


def listed(api: Api, url: str, key: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(url, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()[key])


def recall(api: Api, store_id: str, profile_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(profiles_url(store_id, profile_id, "Recall"), json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def profile(api: Api) -> tuple[str, str]:
    store_id = make_store(api)
    return store_id, make_profile(api, store_id, email="mem@example.com")


def test_documented_observation_requests(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    for body in (SINGLE, BATCH):
        response = api.post(observations_url(store_id, profile_id), json=body)
        assert response.status_code == 202, response.text
        assert response.json() == {"message": "Observations creation accepted"}
    items = listed(api, observations_url(store_id, profile_id), "observations")
    assert len(items) == 3
    # Newest createdAt first; the batch's second item was created last.
    assert items[0]["source"] == "chat_transcript"
    assert items[0]["conversationIds"] == ["conv_conversation_00000000000000000000000000"]
    assert items[0]["id"].startswith("mem_observation_")
    assert "conversationIds" not in items[2]
    fetched = api.get(observations_url(store_id, profile_id, items[2]["id"]))
    assert fetched.status_code == 200
    assert fetched.json() == items[2]
    meta = api.get(observations_url(store_id, profile_id)).json()["meta"]
    assert meta["key"] == "observations" and meta["pageSize"] == 3


def test_patch_keeps_revisions_and_delete(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    observe(api, store_id, profile_id, note("first words"))
    (first,) = listed(api, observations_url(store_id, profile_id), "observations")
    url = observations_url(store_id, profile_id, first["id"])
    assert api.patch(url, json={"content": "second words"}).status_code == 202
    response = api.patch(
        url,
        json={"source": "customer_service_followup", "occurredAt": "2025-01-15T16:30:00Z"},
    )
    assert response.status_code == 202
    assert response.json() == {"message": "Observation update accepted"}
    now = api.get(url).json()
    assert now["content"] == "second words"
    assert now["source"] == "customer_service_followup"
    assert now["occurredAt"] == "2025-01-15T16:30:00.000Z"
    assert now["createdAt"] == first["createdAt"]
    assert now["updatedAt"] > first["updatedAt"]
    revisions = listed(api, url + "/Revisions", "revisions")
    # Newest first, each the full state before a change.
    assert [r["content"] for r in revisions] == ["second words", "first words"]
    assert revisions[0]["source"] == "test"
    assert revisions[1] == first
    # A patch that changes nothing keeps no revision.
    assert api.patch(url, json={"content": "second words"}).status_code == 202
    assert len(listed(api, url + "/Revisions", "revisions")) == 2
    assert api.patch(url, json={}).status_code == 400
    deleted = api.delete(url)
    assert deleted.status_code == 202
    assert deleted.json() == {"message": "Observation deletion accepted"}
    gone = api.get(url)
    assert gone.status_code == 404
    assert gone.json()["code"] == 520003
    assert api.get(url + "/Revisions").status_code == 404
    assert api.delete(url).json()["code"] == 520003


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"content": ""}, "content"),
        ({"content": "x" * 4097}, "content"),
        ({"source": "has 'quotes'"}, "source"),
        ({"occurredAt": None}, "occurredAt"),
        ({"occurredAt": "yesterday"}, "occurredAt"),
        ({"conversationIds": ["conv_nope"]}, "conversationIds"),
        ({"conversationIds": [CONV] * 11}, "conversationIds"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_one_bad_observation_writes_nothing(
    api: Api, profile: tuple[str, str], bad: dict[str, Any], words: str
) -> None:
    store_id, profile_id = profile
    item = {**note("fine"), **bad}
    item = {k: v for k, v in item.items() if v is not None}
    response = api.post(
        observations_url(store_id, profile_id), json={"observations": [note("good"), item]}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 520046
    assert words in response.json()["message"]
    assert listed(api, observations_url(store_id, profile_id), "observations") == []


def test_create_limits(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    url = observations_url(store_id, profile_id)
    assert api.post(url, json={"observations": []}).status_code == 400
    assert api.post(url, json={"observations": [note("x")] * 11}).status_code == 400
    unknown = api.post(
        observations_url(store_id, "mem_profile_01h455vb4pex5vsknk084sn02q"),
        json={"observations": [note("x")]},
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 520009


def test_at_most_500_observations_per_profile(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    url = observations_url(store_id, profile_id)
    for n in range(50):
        batch = [note(f"item {n}-{k}") for k in range(10)]
        assert api.post(url, json={"observations": batch}).status_code == 202
    full = api.post(url, json={"observations": [note("one too many")]})
    assert full.status_code == 400
    assert "at most 500 observations" in full.json()["message"]
    first_page = api.get(url, params={"pageSize": 1000}).json()
    assert len(first_page["observations"]) == 50  # pages hold at most 50
    assert first_page["meta"]["nextToken"]


def test_list_filters(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    url = observations_url(store_id, profile_id)
    observe(api, store_id, profile_id, note("a", conversationIds=[CONV]))
    time.sleep(0.01)
    (a,) = listed(api, url, "observations")
    observe(api, store_id, profile_id, {**note("b"), "source": "other"})
    time.sleep(0.01)
    observe(api, store_id, profile_id, note("c", conversationIds=[CONV2, CONV]))
    all_items = listed(api, url, "observations")
    assert [o["content"] for o in all_items] == ["c", "b", "a"]
    assert [o["content"] for o in listed(api, url, "observations", orderBy="ASC")] == [
        "a",
        "b",
        "c",
    ]
    assert [o["content"] for o in listed(api, url, "observations", source="other")] == ["b"]
    assert [o["content"] for o in listed(api, url, "observations", conversationId=CONV)] == [
        "c",
        "a",
    ]
    b_created = all_items[1]["createdAt"]
    # createdAfter is inclusive, createdBefore exclusive.
    assert [o["content"] for o in listed(api, url, "observations", createdAfter=b_created)] == [
        "c",
        "b",
    ]
    assert [o["content"] for o in listed(api, url, "observations", createdBefore=b_created)] == [
        "a"
    ]
    assert a["content"] == "a"
    paged = api.get(url, params={"pageSize": 2}).json()
    assert len(paged["observations"]) == 2
    rest = api.get(url, params={"pageSize": 2, "pageToken": paged["meta"]["nextToken"]}).json()
    assert [o["content"] for o in rest["observations"]] == ["a"]
    for params in ({"source": "bad'quote"}, {"createdAfter": "nope"}, {"conversationId": "x"}):
        assert api.get(url, params=params).status_code == 400


def test_summaries(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    url = summaries_url(store_id, profile_id)
    documented = {
        "summaries": [
            {
                "conversationId": CONV,
                "content": "Customer discussed billing concerns and was satisfied with the "
                "resolution provided during this conversation.",
                "source": "conversational_intelligence",
                "occurredAt": "2025-01-15T15:00:00Z",
            }
        ]
    }
    response = api.post(url, json=documented)
    assert response.status_code == 202, response.text
    assert response.json() == {"message": "Summaries creation accepted"}
    other = {
        "conversationId": CONV2,
        "content": "Second chat",
        "occurredAt": "2025-01-16T10:00:00Z",
    }
    assert api.post(url, json={"summaries": [other]}).status_code == 202
    items = listed(api, url, "summaries")
    assert [s["conversationId"] for s in items] == [CONV2, CONV]
    assert "source" not in items[0]
    assert [s["content"] for s in listed(api, url, "summaries", conversationId=CONV)] == [
        documented["summaries"][0]["content"]
    ]
    one = api.get(summaries_url(store_id, profile_id, items[1]["id"]))
    assert one.status_code == 200
    assert one.json() == items[1]
    patched = api.patch(
        summaries_url(store_id, profile_id, items[1]["id"]),
        json={"source": "summary_followup", "occurredAt": "2025-01-15T16:30:00Z"},
    )
    assert patched.status_code == 202
    after = api.get(summaries_url(store_id, profile_id, items[1]["id"])).json()
    assert after["source"] == "summary_followup"
    assert after["content"] == items[1]["content"]
    for bad in (
        {"summaries": [{"content": "x", "occurredAt": "2025-01-15T16:30:00Z"}]},
        {"summaries": [{**other, "conversationId": "nope"}]},
        {"summaries": [other] * 11},
    ):
        assert api.post(url, json=bad).status_code == 400
    assert api.delete(summaries_url(store_id, profile_id, items[0]["id"])).status_code == 202
    assert api.get(summaries_url(store_id, profile_id, items[0]["id"])).status_code == 404
    assert len(listed(api, url, "summaries")) == 1


def test_recall_hybrid_ranking(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    observe(
        api,
        store_id,
        profile_id,
        note("The client wants his money back for the damaged handset."),
        note("Order 7731-XQ was shipped to the wrong warehouse."),
        note("Asked about the weather forecast for the weekend trip."),
        note("Likes talking about football and the league results."),
        note("Mentioned a parcel that arrived late last month."),
    )
    # Meaning only: no word in common with the refund observation.
    by_meaning = recall(api, store_id, profile_id, query="refund request for a broken phone")
    assert by_meaning["observations"][0]["content"].startswith("The client wants his money back")
    assert by_meaning["communications"] == []
    assert isinstance(by_meaning["meta"]["queryTime"], int)
    scores = [o["score"] for o in by_meaning["observations"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    # An exact rare keyword wins over vaguely similar text.
    by_keyword = recall(api, store_id, profile_id, query="7731-XQ delivery")
    assert by_keyword["observations"][0]["content"].startswith("Order 7731-XQ")
    # Both: a memory that shares a word and the meaning comes first, and
    # scores above one that only means something alike.
    both = recall(api, store_id, profile_id, query="refund for my damaged phone")
    assert both["observations"][0]["content"].startswith("The client wants his money back")
    assert both["observations"][0]["score"] > by_meaning["observations"][0]["score"]
    # Threshold and limits.
    strict = recall(api, store_id, profile_id, query="7731-XQ delivery", relevanceThreshold=0.9)
    assert [o["content"][:5] for o in strict["observations"]] == ["Order"]
    limited = recall(api, store_id, profile_id, query="phone", observationsLimit=2)
    assert len(limited["observations"]) <= 2
    none = recall(api, store_id, profile_id, query="phone", observationsLimit=0, summariesLimit=0)
    assert none["observations"] == none["summaries"] == []


def test_recall_without_query_and_windows(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    observe(
        api,
        store_id,
        profile_id,
        note("jan", "2025-01-10T00:00:00Z"),
        note("feb", "2025-02-01T00:00:00Z"),
        note("mar", "2025-03-01T00:00:00Z"),
    )
    summary = {
        "conversationId": CONV,
        "content": "chat about feb",
        "occurredAt": "2025-02-01T00:00:00Z",
    }
    api.post(summaries_url(store_id, profile_id), json={"summaries": [summary]})
    newest = recall(api, store_id, profile_id)
    assert [o["content"] for o in newest["observations"]] == ["mar", "feb", "jan"]
    assert all("score" not in o for o in newest["observations"])
    assert [s["content"] for s in newest["summaries"]] == ["chat about feb"]
    # beginDate inclusive, endDate exclusive, on occurredAt.
    window = recall(
        api, store_id, profile_id, beginDate="2025-02-01T00:00:00Z", endDate="2025-03-01T00:00:00Z"
    )
    assert [o["content"] for o in window["observations"]] == ["feb"]
    assert [s["content"] for s in window["summaries"]] == ["chat about feb"]
    ranked = recall(
        api,
        store_id,
        profile_id,
        query="feb",
        beginDate="2025-02-01T00:00:00Z",
        endDate="2025-03-01T00:00:00Z",
    )
    assert [o["content"] for o in ranked["observations"]] == ["feb"]
    assert ranked["summaries"][0]["content"] == "chat about feb"
    assert (
        api.post(
            profiles_url(store_id, profile_id, "Recall"), json={"query": "x" * 1025}
        ).status_code
        == 400
    )
    assert (
        api.post(
            profiles_url(store_id, profile_id, "Recall"), json={"observationsLimit": 101}
        ).status_code
        == 400
    )


def test_recall_reads_its_writes(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    observe(api, store_id, profile_id, note("Prefers the zylophone colour option"))
    found = recall(api, store_id, profile_id, query="zylophone")
    assert [o["content"] for o in found["observations"]] == ["Prefers the zylophone colour option"]
    (obs,) = listed(api, observations_url(store_id, profile_id), "observations")
    api.patch(observations_url(store_id, profile_id, obs["id"]), json={"content": "Prefers red"})
    assert recall(api, store_id, profile_id, query="zylophone")["observations"] == []
    assert recall(api, store_id, profile_id, query="red")["observations"][0]["content"] == (
        "Prefers red"
    )


def test_memories_follow_a_merge(api: Api) -> None:
    store_id = make_store(api)
    a = make_profile(api, store_id, email="a@example.com")
    b = make_profile(api, store_id, phone="+13175550101")
    observe(api, store_id, a, note("from a"))
    observe(api, store_id, b, note("from b"))
    (b_obs,) = listed(api, observations_url(store_id, b), "observations")
    api.patch(observations_url(store_id, b, b_obs["id"]), json={"content": "from b, edited"})
    api.post(
        summaries_url(store_id, b),
        json={
            "summaries": [
                {"conversationId": CONV, "content": "b chat", "occurredAt": "2025-01-01T00:00:00Z"}
            ]
        },
    )
    bridge = api.post(
        profiles_url(store_id),
        json={"traits": {"Contact": {"email": "a@example.com", "phone": "+13175550101"}}},
    )
    canonical = bridge.json()["id"]
    merged = b if canonical == a else a
    assert canonical == min(a, b)
    contents = sorted(
        o["content"] for o in listed(api, observations_url(store_id, canonical), "observations")
    )
    assert contents == ["from a", "from b, edited"]
    revisions = listed(
        api, observations_url(store_id, canonical, b_obs["id"], "Revisions"), "revisions"
    )
    assert [r["content"] for r in revisions] == ["from b"]
    assert [s["content"] for s in listed(api, summaries_url(store_id, canonical), "summaries")] == [
        "b chat"
    ]
    assert recall(api, store_id, canonical, query="edited")["observations"][0]["id"] == b_obs["id"]
    # The merged-away id: 301 on reads, 308 on writes and Recall, to the canonical profile.
    moved = api.get(observations_url(store_id, merged), follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Canonical-Profile-Id"] == canonical
    moved = api.post(profiles_url(store_id, merged, "Recall"), json={}, follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["Location"].endswith(f"/Profiles/{canonical}/Recall")
    moved = api.post(
        observations_url(store_id, merged),
        json={"observations": [note("x")]},
        follow_redirects=False,
    )
    assert moved.status_code == 308


def test_deleting_a_profile_deletes_its_memories(api: Api, profile: tuple[str, str]) -> None:
    store_id, profile_id = profile
    observe(api, store_id, profile_id, note("gone soon"))
    assert api.delete(profiles_url(store_id, profile_id)).status_code == 202
    again = make_profile(api, store_id, email="mem@example.com")
    assert listed(api, observations_url(store_id, again), "observations") == []
    assert recall(api, store_id, again, query="gone")["observations"] == []


@pytest.fixture
def lexical_api(settings: Settings, db: Database) -> Iterator[Api]:
    plain = settings.model_copy(update={"embedder": "none"})
    with TestClient(create_app(plain, db=db), base_url="http://convmem.test") as client:
        yield Api(client, *new_account(db))


def test_recall_without_an_embedder_is_lexical(lexical_api: Api) -> None:
    api = lexical_api
    store_id = make_store(api)
    profile_id = make_profile(api, store_id, email="lex@example.com")
    observe(
        api,
        store_id,
        profile_id,
        note("The client wants his money back for the damaged handset."),
        note("Asked about shipping times."),
    )
    assert recall(api, store_id, profile_id, query="refund broken phone")["observations"] == []
    found = recall(api, store_id, profile_id, query="shipping")
    assert [o["content"] for o in found["observations"]] == ["Asked about shipping times."]
    assert found["observations"][0]["score"] == 1.0
