"""Overlapping writers: 100 concurrent connections for 30 s creating profiles
whose emails and phones collide with other writers' (so they merge all the
time), on each backend. Prints req/s, latency, the status mix and 5xx (must
be 0), then checks that every identifier ended on exactly one canonical
profile.

    python bench/contention.py [--writers 100] [--duration 30] [--pool 200]
                               [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx2 as httpx  # noqa: E402
from harness import each_backend, live_server, loadgen  # noqa: E402
from tests.invariants import identity_violations  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

from convmem.kit.db import Database  # noqa: E402


def contend(name: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with live_server(database_url) as (base, data_dir, _):
        with httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN)) as client:
            op = client.post("/v1/ControlPlane/Stores", json={"displayName": "contention"})
            store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        result = loadgen(
            base,
            "contend",
            duration=args.duration,
            concurrency=args.writers,
            store=store_id,
            extra=["--pool", str(args.pool)],
        )
        db = Database(database_url or f"sqlite:///{data_dir / 'convmem.db'}")
        try:
            violations = identity_violations(db, store_id)
        finally:
            db.dispose()
    server_errors = sum(v for k, v in result["statuses"].items() if int(k) >= 500)
    return {"backend": name, **result, "5xx": server_errors, "violations": violations}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--pool", type=int, default=200, help="emails and phones to share")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rows = each_backend(args, lambda name, url: [contend(name, url, args)])
    header = f"{'backend':<11}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'5xx':>6}  statuses"
    print(header)
    print("-" * (len(header) + 20))
    ok = True
    for row in rows:
        print(
            f"{row['backend']:<11}{row['rps']:>8.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['5xx']:>6}  {row['statuses']}"
        )
        for violation in row["violations"][:10]:
            print(f"  INVARIANT BROKEN: {violation}")
        ok = ok and row["5xx"] == 0 and not row["violations"]
    print("ok: no 5xx, one canonical profile per identifier" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
