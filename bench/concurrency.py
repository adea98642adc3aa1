"""Throughput as clients are added: /healthz, creates and lookups at 8, 32,
128 and 512 concurrent keep-alive connections, on each backend.

Agents connect by the hundreds; throughput must stay flat as they do. For each
workload the curve is printed with each point's ratio to the best point of
that workload, and the check is that 32, 128 and 512 connections stay within
15% of the best (the same run's figures, so the VM's drift cancels out).

    python bench/concurrency.py [--duration 2] [--rounds 3] [--levels 8,32,128,512]
                                [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import each_backend, live_server  # noqa: E402
from profiles import run_load, seed  # noqa: E402

WORKLOADS = ("healthz", "create", "lookup")
TOLERANCE = 0.15


def curve(name: str, database_url: str | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with live_server(database_url) as (base, data_dir, _):
        store, data = seed(base, args.seed_profiles)
        data_file = data_dir / "seed.json"
        data_file.write_text(json.dumps(data))
        for workload in args.workloads:
            warm = argparse.Namespace(**{**vars(args), "duration": 1, "concurrency": 8})
            run_load(base, workload, warm, store, data_file)
            # Rounds that visit every level in turn; the median round per
            # level is reported, so the VM's drift hits all levels alike.
            runs: dict[int, list[dict[str, Any]]] = {level: [] for level in args.levels}
            for _ in range(args.rounds):
                for level in args.levels:
                    load = argparse.Namespace(**{**vars(args), "concurrency": level})
                    runs[level].append(run_load(base, workload, load, store, data_file))
            for level, results in runs.items():
                median = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
                errors = sum(r["errors"] for r in results)
                rows.append({"backend": name, "level": level, **median, "errors": errors})
    return rows


def report(rows: list[dict[str, Any]]) -> bool:
    header = (
        f"{'backend':<11}{'workload':<9}{'conns':>6}{'req/s':>9}{'x best':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    keys = sorted({(r["backend"], r["scenario"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for backend, workload in keys:
        points = [r for r in rows if r["backend"] == backend and r["scenario"] == workload]
        best = max(p["rps"] for p in points)
        for point in points:
            ratio = point["rps"] / best if best else 0.0
            flat = point["level"] < 32 or ratio >= 1 - TOLERANCE
            ok = ok and flat and point["errors"] == 0
            print(
                f"{backend:<11}{workload:<9}{point['level']:>6}{point['rps']:>9.0f}"
                f"{ratio:>8.2f}{point['p50_ms']:>9.2f}{point['p99_ms']:>9.2f}"
                f"{point['errors']:>8}{'' if flat else '  < 0.85x best'}"
            )
    print(
        "flat: every workload within 15% of its best from 32 to 512 connections"
        if ok
        else "NOT flat (or errors): see the rows marked above"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per point (median kept)")
    parser.add_argument(
        "--levels", type=lambda v: [int(x) for x in v.split(",")], default=[8, 32, 128, 512]
    )
    parser.add_argument("--seed-profiles", type=int, default=2000)
    parser.add_argument(
        "--workloads",
        type=lambda v: v.split(","),
        default=list(WORKLOADS),
        help="healthz,create,lookup",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rows = each_backend(args, lambda name, url: curve(name, url, args))
    report(rows)


if __name__ == "__main__":
    main()
