"""Profile throughput and latency against a live `convmem serve`.

For each backend (SQLite, then PostgreSQL when one answers at 127.0.0.1:5432)
this starts a server, seeds profiles, and drives it with bench/loadgen.py in a
separate process, in rounds: /healthz (the baseline of that round on this
machine), then create-with-resolution, fetch and lookup. Prints, per workload,
the median round: throughput, its ratio to the same round's baseline, latency.

    python bench/profiles.py [--rounds 3] [--duration 4] [--concurrency 8]
                             [--backend sqlite|postgresql|both] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from harness import each_backend, live_server, loadgen  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

TARGETS = {
    "create": {"rps": 800, "ratio": 0.3},
    "lookup": {"rps": 1500, "ratio": 0.5, "p95_ms": 20},
}


def seed(base: str, count: int) -> tuple[str, dict[str, list[str]]]:
    client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=60)
    op = client.post(
        "/v1/ControlPlane/Stores", json={"displayName": f"bench-{secrets.token_hex(3)}"}
    )
    store_id = client.get(op.headers["Location"]).json()["result"]["id"]
    emails = [f"seed-{n}@example.com" for n in range(count)]
    for start in range(0, count, 1000):
        profiles = [
            {"traits": {"Contact": {"email": e, "firstName": "Seed", "phone": f"+1317555{n:04d}"}}}
            for n, e in enumerate(emails[start : start + 1000], start)
        ]
        response = client.put(f"/v1/Stores/{store_id}/Profiles/Bulk", json={"profiles": profiles})
        response.raise_for_status()
    ids = client.get(f"/v1/Stores/{store_id}/Profiles", params={"pageSize": 1000}).json()[
        "profiles"
    ]
    client.close()
    return store_id, {"ids": ids, "emails": emails}


def run_load(
    base: str, scenario: str, args: argparse.Namespace, store: str, data_file: Path
) -> dict[str, Any]:
    return loadgen(
        base,
        scenario,
        duration=args.duration,
        concurrency=args.concurrency,
        store=store,
        data_file=data_file,
    )


def bench_backend(
    name: str, database_url: str | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    processes = str(args.processes if database_url else 1)
    with live_server(database_url, CONVMEM_PROCESSES=processes) as (base, data_dir, _):
        store, data = seed(base, args.seed_profiles)
        data_file = data_dir / "seed.json"
        data_file.write_text(json.dumps(data))
        warm = argparse.Namespace(**{**vars(args), "duration": 1})
        for scenario in SCENARIOS:
            run_load(base, scenario, warm, store, data_file)
        # Rounds of every workload, each against its own round's baseline:
        # this VM's speed drifts, and a ratio within one round cancels it.
        rounds = [
            {s: run_load(base, s, args, store, data_file) for s in SCENARIOS}
            for _ in range(args.rounds)
        ]
        return [summarize(name, scenario, rounds) for scenario in SCENARIOS]


SCENARIOS = ("healthz", "create", "fetch", "lookup")


def summarize(
    backend: str, scenario: str, rounds: list[dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The median round of a workload, with its ratio to that round's healthz."""
    rows = sorted(
        ({**r[scenario], "ratio": r[scenario]["rps"] / r["healthz"]["rps"]} for r in rounds),
        key=lambda row: row["ratio"],
    )
    median = rows[len(rows) // 2]
    return {"backend": backend, **median, "errors": sum(r[scenario]["errors"] for r in rounds)}


def report(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'backend':<11}{'workload':<9}{'req/s':>9}{'x healthz':>11}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}  target"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        ratio = row["ratio"]
        target = TARGETS.get(row["scenario"])
        verdict = ""
        if target:
            met = row["rps"] >= target["rps"] or ratio >= target["ratio"]
            if "p95_ms" in target:
                met = met and row["p95_ms"] < target["p95_ms"]
            verdict = ("met" if met else "MISSED") + f" (>= {target['rps']}/s or {target['ratio']}x"
            verdict += f", p95 < {target['p95_ms']} ms)" if "p95_ms" in target else ")"
        latency = f"{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['p99_ms']:>9.2f}"
        print(
            f"{row['backend']:<11}{row['scenario']:<9}{row['rps']:>9.0f}{ratio:>11.2f}"
            f"{latency}{row['errors']:>8}  {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per workload")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every workload")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed-profiles", type=int, default=2000)
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes for PostgreSQL runs"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    results = each_backend(args, lambda name, url: bench_backend(name, url, args))
    report(results)


if __name__ == "__main__":
    main()
