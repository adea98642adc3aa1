"""Recall latency against a live `convmem serve`, with a large store.

Per backend: a store holding `--store-memories` observations (default
1,000,000, over 2,000 profiles; written straight into the database with
random vectors, since only their number matters to the queried profile),
and one profile with 500 real observations written through the API (so
embedded by the server). Printed: p50/p95 of Recall on that profile
(including the query's embedding), next to a same-run floor: the lexical
query alone, run directly against the database; and the p95 of creating a
batch of 10 observations through the API. Target: Recall p95 <= 20 ms on
SQLite on this 2-core machine.

    python bench/recall.py [--store-memories 1000000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import live_server, scratch_postgres  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

from convmem.kit import ids  # noqa: E402
from convmem.memories import ranking  # noqa: E402

TARGET_P95_MS = {"sqlite": 20.0}
PROFILES = 2000
QUERIES = 200
WORDS = [
    "order",
    "refund",
    "billing",
    "charge",
    "invoice",
    "delivery",
    "parcel",
    "shipping",
    "address",
    "phone",
    "email",
    "account",
    "password",
    "login",
    "plan",
    "upgrade",
    "downgrade",
    "discount",
    "coupon",
    "birthday",
    "anniversary",
    "flight",
    "hotel",
    "booking",
    "cancel",
    "change",
    "seat",
    "meal",
    "vegetarian",
    "allergy",
    "doctor",
    "appointment",
    "insurance",
    "claim",
    "car",
    "repair",
    "garden",
    "paint",
    "guitar",
    "concert",
    "ticket",
    "football",
    "tennis",
    "school",
    "kids",
    "holiday",
    "beach",
    "mountain",
    "camping",
    "family",
    "dog",
    "cat",
    "coffee",
    "tea",
    "pizza",
    "sushi",
    "laptop",
    "screen",
    "battery",
    "warranty",
    "return",
    "exchange",
    "size",
    "colour",
    "red",
    "blue",
    "green",
    "store",
    "weekend",
    "morning",
    "evening",
    "monday",
    "friday",
    "january",
    "march",
    "july",
    "october",
    "late",
    "early",
    "happy",
    "angry",
    "confused",
    "satisfied",
    "frustrated",
    "excited",
    "worried",
    "calm",
    "polite",
    "rude",
]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    return "Customer " + " ".join(words) + "."


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def seed(url: str | None, data_dir: Path, store_id: str, count: int, rng: random.Random) -> None:
    """`count` observations over PROFILES profiles, straight into the tables."""
    start = time.perf_counter()
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    vectors = rng_vectors(count, rng)
    per = max(1, count // PROFILES)

    def row(n: int, stamp: Any) -> tuple[Any, ...]:
        """Observation n's columns, store_id to embedding, in table order."""
        profile = f"mem_profile_seed{n // per:022d}"
        content = sentence(rng)
        observation = ids.new_id(ids.OBSERVATION)
        return (store_id, observation, profile, content, "seed", "[]", stamp, stamp, stamp,
                vectors[n].tobytes())  # fmt: skip

    if url is None:
        conn = sqlite3.connect(data_dir / "convmem.db")
        top = conn.execute("SELECT coalesce(max(fts_id), 0) FROM observations").fetchone()[0]
        stamp = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        for lo in range(0, count, 20_000):
            rows = [(*row(n, stamp), top + n + 1) for n in range(lo, min(count, lo + 20_000))]
            conn.executemany(
                "INSERT INTO observations (store_id, id, profile_id, content, source, "
                "conversation_ids, occurred_at, created_at, updated_at, embedding, fts_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.commit()
        conn.close()
    else:
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            with cur.copy(
                "COPY observations (store_id, id, profile_id, content, source, conversation_ids, "
                "occurred_at, created_at, updated_at, embedding) FROM STDIN"
            ) as copy:
                for n in range(count):
                    copy.write_row(row(n, now))
            cur.execute("ANALYZE observations")
    print(f"  seeded {count:,} observations in {time.perf_counter() - start:.0f} s", flush=True)


def rng_vectors(count: int, rng: random.Random) -> np.ndarray:
    generator = np.random.default_rng(rng.randrange(2**32))
    out = np.empty((count, 384), dtype="<f4")
    for lo in range(0, count, 100_000):
        block = generator.standard_normal((min(100_000, count - lo), 384)).astype("<f4")
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[lo : lo + len(block)] = block
    return out


def floor_query(
    url: str | None, data_dir: Path, store_id: str, profile: str, terms: list[str]
) -> float:
    """Seconds of the full-text query alone (the server's statement), straight
    against the database."""
    if url is None:
        conn: Any = sqlite3.connect(data_dir / "convmem.db")
        sql = (
            "SELECT m.id, m.content FROM observation_fts "
            "CROSS JOIN observations m ON m.fts_id = observation_fts.rowid "
            "WHERE observation_fts MATCH ? AND m.store_id = ? AND m.profile_id = ?"
        )
        params: Any = (ranking.fts5_query(profile, terms), store_id, profile)
    else:
        conn = psycopg.connect(url)
        sql = (
            "SELECT m.id, ts_rank_cd(m.search_vector, q) FROM observations m, "
            "to_tsquery('english', %s) q WHERE m.store_id = %s AND m.profile_id = %s "
            "AND m.search_vector @@ q"
        )
        params = (ranking.pg_tsquery(terms), store_id, profile)
    start = time.perf_counter()
    conn.execute(sql, params).fetchall()
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def run(name: str, url: str | None, count: int) -> None:
    rng = random.Random(11)
    with live_server(url, CONVMEM_JOB_POLL_SECONDS="1") as (base, data_dir, _):
        client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=60)
        op = client.post("/v1/ControlPlane/Stores", json={"displayName": f"recall-{name}"})
        store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        profile = client.post(
            f"/v1/Stores/{store_id}/Profiles",
            json={"traits": {"Contact": {"email": "recall@example.com"}}},
        ).json()["id"]
        writes = []
        for batch in range(50):
            body = {
                "observations": [
                    {
                        "content": sentence(rng),
                        "source": "bench",
                        "occurredAt": f"2025-01-{1 + (batch % 28):02d}T10:00:00Z",
                    }
                    for _ in range(10)
                ]
            }
            start = time.perf_counter()
            response = client.post(
                f"/v1/Stores/{store_id}/Profiles/{profile}/Observations", json=body
            )
            writes.append(time.perf_counter() - start)
            assert response.status_code == 202, response.text
        seed(url, data_dir, store_id, count, rng)
        questions = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(QUERIES)
        ]
        for q in questions[:10]:  # warm up (the model loads on the first query)
            client.post(f"/v1/Stores/{store_id}/Profiles/{profile}/Recall", json={"query": q})
        latencies, floors = [], []
        for q in questions:
            start = time.perf_counter()
            response = client.post(
                f"/v1/Stores/{store_id}/Profiles/{profile}/Recall", json={"query": q}
            )
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
            floors.append(floor_query(url, data_dir, store_id, profile, ranking.query_terms(q)))
        client.close()
    ms = [x * 1000 for x in latencies]
    floor_ms = [x * 1000 for x in floors]
    write_ms = [x * 1000 for x in writes]
    target = TARGET_P95_MS.get(name)
    verdict = ""
    if target is not None:
        verdict = f"{'met' if percentile(ms, 95) <= target else 'MISSED'} (p95 <= {target:g} ms)"
    print(
        f"{name:<11}{count:>10,}{statistics.median(ms):>9.1f}{percentile(ms, 95):>9.1f}"
        f"{statistics.median(floor_ms):>11.2f}{percentile(floor_ms, 95):>11.2f}"
        f"{percentile(write_ms, 95):>12.1f}  {verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store-memories", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(
        f"{'backend':<11}{'store':>10}{'p50 ms':>9}{'p95 ms':>9}{'floor p50':>11}"
        f"{'floor p95':>11}{'write p95':>12}  target",
        flush=True,
    )
    if args.backend in ("sqlite", "both"):
        run("sqlite", None, args.store_memories)
    if args.backend in ("postgresql", "both"):
        with scratch_postgres() as url:
            if url:
                run("postgresql", url, args.store_memories)


if __name__ == "__main__":
    main()
