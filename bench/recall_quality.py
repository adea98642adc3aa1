"""Recall quality on LoCoMo (evaluation data, read from ../shared; never copied
into the repository).

For each of the 5 conversations of `../shared/eval/locomo/locomo_dev.json`,
its observations (one per fact, `source` = the fact's dialogue id, `occurredAt`
= its session's date) go into one profile through the API of a live
`convmem serve`; every evidence-labelled question is then asked through
Recall (`observationsLimit` 10, no summaries). Printed: evidence recall@10
(the share of a question's evidence ids found in the top 10, over the
evidence ids some observation carries) and hit@10 (at least one found), for
convmem's hybrid ranking next to two same-run baselines: BM25 alone (the same
server with `CONVMEM_EMBEDDER=none`: SQLite FTS5) and the embedding alone
(MiniLM cosine over the same observations, computed here). Plain
reciprocal-rank fusion of the two baselines is printed for reference.

    python bench/recall_quality.py [--data PATH] [--tune]

`--tune` also grid-searches the fusion's weight and semantic bounds offline on
the same scores (convmem.memories.ranking) and prints the best settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import live_server  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

from convmem.memories import ranking  # noqa: E402
from convmem.memories.embeddings import MiniLM  # noqa: E402

DATA = ROOT.parent / "shared" / "eval" / "locomo" / "locomo_dev.json"
K = 10


def session_dates(conversation: dict[str, Any]) -> dict[str, str]:
    """session number -> ISO time of the session ("1:56 pm on 8 May, 2023")."""
    dates = {}
    for key, value in conversation.items():
        if key.startswith("session_") and key.endswith("_date_time"):
            number = key.split("_")[1]
            when = dt.datetime.strptime(value.replace(",", ""), "%I:%M %p on %d %B %Y")
            dates[number] = when.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return dates


def facts(sample: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(text, dialogue id, occurredAt) of every observation of a conversation."""
    dates = session_dates(sample["conversation"])
    found = []
    for key, speakers in sample["observation"].items():
        number = key.split("_")[1]
        for items in speakers.values():
            for text, dia_id in items:
                ids = dia_id if isinstance(dia_id, list) else [dia_id]
                for one in ids:
                    found.append((text, str(one), dates[number]))
    return found


def questions(sample: dict[str, Any], known: set[str]) -> Iterator[tuple[str, set[str]]]:
    for qa in sample["qa"]:
        gold = {e for e in qa.get("evidence", []) if e in known}
        if gold:
            yield qa["question"], gold


def source_of(dia_id: str) -> str:
    return dia_id.replace(":", "-")  # a source allows letters, digits, space, _ . -


class Run:
    """One profile per conversation on a live server."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=120)
        op = self.client.post("/v1/ControlPlane/Stores", json={"displayName": "locomo"})
        self.store = self.client.get(op.headers["Location"]).json()["result"]["id"]

    def load(self, n: int, items: list[tuple[str, str, str]]) -> str:
        created = self.client.post(
            f"/v1/Stores/{self.store}/Profiles",
            json={"traits": {"Contact": {"email": f"locomo{n}@example.com"}}},
        )
        profile = created.json()["id"]
        for start in range(0, len(items), 10):
            batch = [
                {"content": text, "source": source_of(dia), "occurredAt": when}
                for text, dia, when in items[start : start + 10]
            ]
            response = self.client.post(
                f"/v1/Stores/{self.store}/Profiles/{profile}/Observations",
                json={"observations": batch},
            )
            assert response.status_code == 202, response.text
        return str(profile)

    def ask(self, profile: str, question: str, limit: int = K) -> list[tuple[str, float]]:
        response = self.client.post(
            f"/v1/Stores/{self.store}/Profiles/{profile}/Recall",
            json={"query": question, "observationsLimit": limit, "summariesLimit": 0},
        )
        assert response.status_code == 200, response.text
        return [(o["source"], float(o.get("score", 0))) for o in response.json()["observations"]]


def score(ranked: list[list[str]], golds: list[set[str]]) -> tuple[float, float]:
    recalls, hits = [], []
    for top, gold in zip(ranked, golds, strict=True):
        found = {s.replace("-", ":") for s in top[:K]} & gold
        recalls.append(len(found) / len(gold))
        hits.append(1.0 if found else 0.0)
    return float(np.mean(recalls)), float(np.mean(hits))


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--tune", action="store_true")
    args = parser.parse_args()
    samples = json.loads(args.data.read_text())
    loaded = [(facts(s), s) for s in samples]
    golds: list[set[str]] = []
    asked: list[tuple[int, str]] = []
    for n, (items, sample) in enumerate(loaded):
        for question, gold in questions(sample, {dia for _, dia, _ in items}):
            asked.append((n, question))
            golds.append(gold)
    print(
        f"{len(samples)} conversations, {sum(len(i) for i, _ in loaded)} observations, "
        f"{len(asked)} questions with evidence among them"
    )

    results: dict[str, list[list[str]]] = {}
    lexical_scores: list[dict[str, float]] = []
    for label, env in (("hybrid", {}), ("bm25", {"CONVMEM_EMBEDDER": "none"})):
        with live_server(None, **env) as (base, _, _):
            run = Run(base)
            profiles = [run.load(n, items) for n, (items, _) in enumerate(loaded)]
            ranked = []
            for n, question in asked:
                found = run.ask(profiles[n], question, limit=100 if label == "bm25" else K)
                ranked.append([source for source, _ in found])
                if label == "bm25":
                    lexical_scores.append({source: s for source, s in found})
            results[label] = ranked
            run.client.close()

    # The embedding alone: cosine over the same observations, in this process.
    model = MiniLM(threads=2)
    vectors = [model.embed([text for text, _, _ in items]) for items, _ in loaded]
    sources = [[source_of(dia) for _, dia, _ in items] for items, _ in loaded]
    query_vectors = model.embed([q for _, q in asked])
    semantic_scores: list[dict[str, float]] = []
    embedding_ranked = []
    for (n, _), qv in zip(asked, query_vectors, strict=True):
        similarity = vectors[n] @ qv
        best: dict[str, float] = {}
        for source, s in zip(sources[n], similarity, strict=True):
            best[source] = max(best.get(source, -1.0), float(s))
        semantic_scores.append(best)
        embedding_ranked.append(sorted(best, key=lambda k: -best[k]))
    results["embedding"] = embedding_ranked
    # For reference: plain reciprocal-rank fusion of the two baselines (k = 60).
    rrf = []
    for lexical_top, semantic_top in zip(results["bm25"], embedding_ranked, strict=True):
        fused: dict[str, float] = {}
        for ranked_list in (lexical_top, semantic_top[:100]):
            for rank, source in enumerate(ranked_list):
                fused[source] = fused.get(source, 0.0) + 1 / (60 + rank + 1)
        rrf.append(sorted(fused, key=lambda k: -fused[k]))
    results["rrf"] = rrf

    print(f"{'ranking':<12}{'recall@10':>10}{'hit@10':>8}")
    for label in ("hybrid", "bm25", "embedding", "rrf"):
        r, h = score(results[label], golds)
        print(f"{label:<12}{r:>10.3f}{h:>8.3f}")

    if args.tune:
        tune(lexical_scores, semantic_scores, golds)


def tune(
    lexical: list[dict[str, float]], semantic: list[dict[str, float]], golds: list[set[str]]
) -> None:
    """The fusion's settings that rank best on these scores (offline)."""
    rows = []
    for weight, floor, ceiling in itertools.product(
        [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.0, 0.1, 0.15, 0.2, 0.25], [0.6, 0.7, 0.8, 1.0]
    ):
        ranked = []
        for lex, sem in zip(lexical, semantic, strict=True):
            span = ceiling - floor
            fused: dict[str, float] = {}
            for key in set(lex) | set(sem):
                s = min(max((sem.get(key, 0.0) - floor) / span, 0.0), 1.0)
                fused[key] = weight * lex.get(key, 0.0) + (1 - weight) * s
            ranked.append(sorted(fused, key=lambda k: -fused[k]))
        r, h = score(ranked, golds)
        rows.append((r, h, weight, floor, ceiling))
    rows.sort(reverse=True)
    print("best fusions (lexical weight, semantic floor, ceiling):")
    for r, h, weight, floor, ceiling in rows[:8]:
        print(f"  w={weight:.2f} floor={floor:.2f} ceiling={ceiling:.2f}: R@10 {r:.3f} hit {h:.3f}")
    current = (ranking.LEXICAL_WEIGHT, ranking.SEMANTIC_FLOOR, ranking.SEMANTIC_CEILING)
    print(f"current: w={current[0]:.2f} floor={current[1]:.2f} ceiling={current[2]:.2f}")


if __name__ == "__main__":
    main()
