"""The hot-path bench in a store of a million profiles.

Per backend, one `convmem serve` holds two stores: a small one (2,000 profiles,
as bench/profiles.py seeds them) and a big one (1,000,000 profiles by default,
seeded through the CSV import path with bench/imports.py's generator). Rounds
alternate between them, so the VM's drift hits both alike: healthz, then
create, fetch and lookup against each store. Prints every workload's median
req/s per store and big/small (target: >= 0.8, within 20%), plus the storage a
million profiles take: the SQLite file, or PostgreSQL's profile tables.

    python bench/scale.py [--profiles 1000000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import each_backend, live_server  # noqa: E402
from imports import generate, import_file  # noqa: E402
from profiles import run_load, sample, seed  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

WORKLOADS = ("create", "fetch", "lookup")
TARGET = 0.8
TABLES = ("profiles", "profile_trait_groups", "profile_identifiers")


def big_store(base: str, path: Path) -> tuple[str, dict[str, list[str]], float]:
    """A store seeded by importing `path`: (id, load data, import seconds)."""
    with httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=600) as client:
        op = client.post("/v1/ControlPlane/Stores", json={"displayName": "bench-scale"})
        store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        _, seconds = import_file(client, store_id, path)
    with path.open(newline="") as handle:
        emails = [row["email"] for n, row in enumerate(csv.DictReader(handle)) if n % 97 == 0]
    return store_id, sample(base, store_id, emails), seconds


def storage(url: str | None, data_dir: Path, profiles: int) -> str:
    """What the store's data takes, per million profiles."""
    per_million = 1_000_000 / profiles / 2**20
    if url is None:
        main = (data_dir / "convmem.db").stat().st_size
        wal = data_dir / "convmem.db-wal"
        extra = f" (and a {wal.stat().st_size / 2**20:,.0f} MiB WAL)" if wal.exists() else ""
        return f"SQLite file: {main * per_million:,.0f} MiB per million profiles{extra}"
    with psycopg.connect(url) as conn:
        sizes = {
            table: conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]
            for table in TABLES
        }
    parts = ", ".join(f"{t} {b * per_million:,.0f} MiB" for t, b in sizes.items())
    return f"PostgreSQL, with indexes, per million profiles: {parts}"


def bench_backend(name: str, url: str | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "people.csv"
        generate(path, args.profiles)
        with live_server(url, CONVMEM_JOB_POLL_SECONDS="0.05") as (base, data_dir, _):
            big, big_data, seconds = big_store(base, path)
            print(f"{name}: imported {args.profiles:,} profiles in {seconds:.0f} s", flush=True)
            small, small_data = seed(base, 2000)
            stores = {"small": (small, small_data), "big": (big, big_data)}
            files = {}
            for label, (_, data) in stores.items():
                files[label] = data_dir / f"{label}.json"
                files[label].write_text(json.dumps(data))
            warm = argparse.Namespace(**{**vars(args), "duration": 1})
            for label, (store, _) in stores.items():
                for workload in WORKLOADS:
                    run_load(base, workload, warm, store, files[label])
            rounds = []
            for _ in range(args.rounds):
                result = {"healthz": run_load(base, "healthz", args, small, files["small"])}
                for workload in WORKLOADS:
                    for label, (store, _) in stores.items():
                        result[f"{workload}/{label}"] = run_load(
                            base, workload, args, store, files[label]
                        )
                rounds.append(result)
            print(storage(url, data_dir, args.profiles), flush=True)
    return [summarize(name, workload, rounds) for workload in WORKLOADS]


def summarize(backend: str, workload: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        values = sorted(r[key]["rps"] for r in rounds)
        return values[len(values) // 2]

    ratios = sorted(r[f"{workload}/big"]["rps"] / r[f"{workload}/small"]["rps"] for r in rounds)
    return {
        "backend": backend,
        "workload": workload,
        "small": median(f"{workload}/small"),
        "big": median(f"{workload}/big"),
        "ratio": ratios[len(ratios) // 2],
        "p95_big": sorted(r[f"{workload}/big"]["p95_ms"] for r in rounds)[len(rounds) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rows = each_backend(args, lambda name, url: bench_backend(name, url, args))
    print(
        f"{'backend':<11}{'workload':<9}{'2k req/s':>10}{'big req/s':>11}{'big/2k':>8}"
        f"{'p95 big':>9}  target"
    )
    for row in rows:
        verdict = "met" if row["ratio"] >= TARGET else "MISSED"
        print(
            f"{row['backend']:<11}{row['workload']:<9}{row['small']:>10.0f}{row['big']:>11.0f}"
            f"{row['ratio']:>8.2f}{row['p95_big']:>9.2f}  {verdict} (>= {TARGET}x)"
        )


if __name__ == "__main__":
    main()
