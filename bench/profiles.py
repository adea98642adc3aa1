"""Profile throughput and latency against a live `convmem serve`.

For each backend (SQLite, then PostgreSQL when one answers at 127.0.0.1:5432)
and each server layout (one process with the job workers inside; `--processes
2` with the workers in a separate `convmem worker`), this starts a server,
seeds profiles, and drives it with bench/loadgen.py in a separate process, in
rounds: /healthz (the baseline of that round on this machine), the floor (a
route that only authenticates and parses the create body), then
create-with-resolution, fetch and lookup. Prints, per workload, the median
round: throughput, its ratio to the same round's baseline, latency, and the
hot-path targets marked met or missed.

    python bench/profiles.py [--rounds 3] [--duration 4] [--concurrency 8]
                             [--backend sqlite|postgresql|both] [--layouts 1,2]
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

SCENARIOS = ("healthz", "floor", "create", "fetch", "lookup")
# Issue "hot path": ratio to the same round's /healthz AND requests/s, per backend.
TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "sqlite": {
        "create": {"ratio": 0.35, "rps": 1500},
        "lookup": {"ratio": 0.6, "rps": 2500, "p95_ms": 10},
        "fetch": {"ratio": 0.5},
    },
    "postgresql": {
        "create": {"ratio": 0.40, "rps": 1000},
        "lookup": {"ratio": 0.6, "rps": 1500, "p95_ms": 10},
        "fetch": {"ratio": 0.5},
    },
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
    client.close()
    return store_id, sample(base, store_id, emails)


def sample(base: str, store_id: str, emails: list[str]) -> dict[str, list[str]]:
    """What the load draws from: up to 1,000 profile ids and 10,000 emails."""
    with httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=60) as client:
        listed = client.get(f"/v1/Stores/{store_id}/Profiles", params={"pageSize": 1000})
        ids = listed.json()["profiles"]
    step = max(1, len(emails) // 10_000)
    return {"ids": ids, "emails": emails[::step]}


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


def measure(
    name: str, layout: str, base: str, store: str, data: dict[str, Any], data_dir: Path, args: Any
) -> list[dict[str, Any]]:
    """Warm-up, then rounds of every workload against the seeded store."""
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
    return [summarize(name, layout, scenario, rounds) for scenario in SCENARIOS]


def server(database_url: str | None, processes: int) -> Any:
    """One process with the workers inside, or N processes plus a worker."""
    if processes == 1:
        return live_server(database_url, CONVMEM_BENCH_ROUTES="true")
    return live_server(
        database_url,
        separate_worker=True,
        CONVMEM_BENCH_ROUTES="true",
        CONVMEM_PROCESSES=str(processes),
    )


def bench_backend(
    name: str, database_url: str | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for processes in args.layouts:
        layout = "1 process" if processes == 1 else f"{processes} proc + worker"
        with server(database_url, processes) as (base, data_dir, _):
            store, data = seed(base, args.seed_profiles)
            results += measure(name, layout, base, store, data, data_dir, args)
    return results


def summarize(
    backend: str, layout: str, scenario: str, rounds: list[dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The median round of a workload, with its ratio to that round's healthz."""
    rows = sorted(
        ({**r[scenario], "ratio": r[scenario]["rps"] / r["healthz"]["rps"]} for r in rounds),
        key=lambda row: row["ratio"],
    )
    median = rows[len(rows) // 2]
    return {
        "backend": backend,
        "layout": layout,
        **median,
        "errors": sum(r[scenario]["errors"] for r in rounds),
    }


def verdict(row: dict[str, Any]) -> str:
    target = TARGETS.get(row["backend"], {}).get(row["scenario"])
    if not target:
        return ""
    wanted = [f"{target['ratio']}x"]
    met = row["ratio"] >= target["ratio"]
    if "rps" in target:
        wanted.append(f"{target['rps']:.0f}/s")
        met = met and row["rps"] >= target["rps"]
    if "p95_ms" in target:
        wanted.append(f"p95 < {target['p95_ms']:.0f} ms")
        met = met and row["p95_ms"] < target["p95_ms"]
    return ("met" if met else "MISSED") + f" (>= {', '.join(wanted)})"


def report(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'backend':<11}{'layout':<18}{'workload':<9}{'req/s':>8}{'x healthz':>10}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'errors':>7}  target"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        latency = f"{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}{row['p99_ms']:>8.2f}"
        print(
            f"{row['backend']:<11}{row['layout']:<18}{row['scenario']:<9}{row['rps']:>8.0f}"
            f"{row['ratio']:>10.2f}{latency}{row['errors']:>7}  {verdict(row)}"
        )


def arguments(description: str | None = __doc__) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per workload")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every workload")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed-profiles", type=int, default=2000)
    parser.add_argument(
        "--layouts",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="server processes per run, comma-separated; more than one adds a separate worker",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    return parser


def main() -> None:
    args = arguments().parse_args()
    results = each_backend(args, lambda name, url: bench_backend(name, url, args))
    report(results)


if __name__ == "__main__":
    main()
