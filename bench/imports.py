"""CSV import throughput and memory against a live `convmem serve`.

Generates a CSV (default 1,000,000 rows, ~100 MiB: emails, names, phones in
mixed formats, 10% of rows sharing an identifier with another row), imports it
through the API on each backend and prints rows/s and the server's peak RSS
next to a same-run baseline: parsing the same file and bulk-inserting its rows
into a plain table of the same database. The peak RSS counts the server and the
process that builds its import batches ahead (SQLite).

    python bench/imports.py [--rows 1000000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import live_server, scratch_postgres  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

TARGETS = {"sqlite": {"rps": 25_000, "ratio": 12.0, "rss_mb": 500}}
FIRST = ["Ann", "Bob", "Carla", "Dev", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jun"]
LAST = ["Lee", "Smith", "Okafor", "Novak", "Garcia", "Kim", "Rossi", "Cohen", "Sato", "Berg"]
CITIES = ["Lisbon", "Austin", "Osaka", "Lagos", "Lyon", "Quito", "Perth", "Oslo"]
MAPPINGS = [
    {"columnName": "email", "traitGroup": "Contact", "traitName": "email"},
    {"columnName": "phone", "traitGroup": "Contact", "traitName": "phone"},
    {"columnName": "first_name", "traitGroup": "Contact", "traitName": "firstName"},
    {"columnName": "last_name", "traitGroup": "Contact", "traitName": "lastName"},
    {"columnName": "city", "traitGroup": "Contact", "traitName": "city"},
    {"columnName": "street", "traitGroup": "Contact", "traitName": "street"},
]


def phone(n: int, rng: random.Random) -> str:
    digits = f"{2000000000 + n * 7919 % 7999999999:010d}"
    area, mid, end = digits[:3], digits[3:6], digits[6:]
    style = rng.random()
    if style < 0.6:
        return f"+1{digits}"  # E.164 already: the common case in exports
    if style < 0.8:
        return f"({area}) {mid}-{end}"
    return f"{area}.{mid}.{end}"


def generate(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([m["columnName"] for m in MAPPINGS])
        for n in range(rows):
            # One row in ten is an earlier person again (same email, new details).
            person = rng.randrange(n) if n and rng.random() < 0.1 else n
            writer.writerow(
                [
                    f"person{person}.{FIRST[person % 10].lower()}@example.com",
                    phone(person, rng),
                    FIRST[rng.randrange(10)],
                    LAST[rng.randrange(10)],
                    rng.choice(CITIES),
                    f"{rng.randrange(1, 9999)} {rng.choice(LAST)} Street, Apartment {n % 97}",
                ]
            )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline(path: Path, url: str | None, data_dir: Path) -> float:
    """Seconds to parse the file and insert its rows into a plain table."""
    start = time.perf_counter()
    insert = "INSERT INTO bench_rows VALUES (%s, %s, %s, %s, %s, %s)"
    ddl = "CREATE TABLE bench_rows (a TEXT, b TEXT, c TEXT, d TEXT, e TEXT, f TEXT)"
    if url is None:
        conn: Any = sqlite3.connect(data_dir / "baseline.db")
        conn.execute("PRAGMA journal_mode=WAL")
        insert = insert.replace("%s", "?")
    else:
        conn = psycopg.connect(url)
    conn.execute(ddl)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        batch: list[list[str]] = []
        for row in reader:
            batch.append(row)
            if len(batch) == 2000:
                conn.cursor().executemany(insert, batch)
                conn.commit()
                batch = []
        if batch:
            conn.cursor().executemany(insert, batch)
            conn.commit()
    conn.close()
    return time.perf_counter() - start


def children_peak_rss_mb(pid: int) -> float:
    """The largest peak RSS among `pid`'s child processes alive now (the
    import's builder process), 0 when it has none."""
    peaks = [0.0]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                peaks.append(peak_rss_mb(int(entry.name)))
        except (OSError, ValueError):
            continue
    return max(peaks)


def import_file(
    client: httpx.Client, store_id: str, path: Path, server_pid: int
) -> tuple[dict[str, Any], float, float]:
    """Import `path` into the store through the API: (final status, seconds
    from the end of the upload to COMPLETED, the peak RSS of the server's
    child processes meanwhile)."""
    created = client.post(
        f"/v1/Stores/{store_id}/Profiles/Imports",
        json={"filename": path.name, "fileSize": path.stat().st_size, "columnMappings": MAPPINGS},
    ).json()
    with path.open("rb") as handle:
        sent = httpx.put(created["url"], content=handle, timeout=600)
    assert sent.status_code == 200, sent.text
    start = time.perf_counter()
    status_url = f"/v1/Stores/{store_id}/Profiles/Imports/{created['importId']}"
    children = 0.0
    while (status := client.get(status_url).json())["status"] not in ("COMPLETED", "FAILED"):
        children = max(children, children_peak_rss_mb(server_pid))
        time.sleep(0.2)
    assert status["status"] == "COMPLETED", status
    return status, time.perf_counter() - start, children


def run(name: str, url: str | None, path: Path) -> dict[str, Any]:
    rows = sum(1 for _ in path.open()) - 1
    with live_server(url, CONVMEM_JOB_POLL_SECONDS="0.05") as (base, _, pid):
        client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=600)
        op = client.post("/v1/ControlPlane/Stores", json={"displayName": f"bench-{name}"})
        store_id = client.get(op.headers["Location"]).json()["result"]["id"]
        status, seconds, children = import_file(client, store_id, path, pid)
        # The server's own peak plus its builder process's (a second process
        # builds large SQLite imports' batches, ingest.prebuild).
        rss = peak_rss_mb(pid) + children
        client.close()
    with tempfile.TemporaryDirectory() as tmp:
        base_seconds = baseline(path, url, Path(tmp))
    counts = status["counts"]
    assert counts["rows"] == rows, (counts, rows)
    return {
        "backend": name,
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "baseline_rows_per_s": rows / base_seconds,
        "ratio": seconds / base_seconds,
        "peak_rss_mb": rss,
        "counts": counts,
        "warnings": status["summary"]["warnings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "people.csv"
        start = time.perf_counter()
        generate(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(
            f"generated {args.rows:,} rows, {size_mb:.1f} MiB "
            f"in {time.perf_counter() - start:.1f} s"
        )
        print(
            f"{'backend':<11}{'rows':>10}{'seconds':>9}{'rows/s':>9}{'baseline/s':>12}"
            f"{'x base':>8}{'peak RSS':>10}  target",
            flush=True,
        )
        if args.backend in ("sqlite", "both"):
            report(run("sqlite", None, path))
        if args.backend in ("postgresql", "both"):
            with scratch_postgres() as url:
                if url:
                    report(run("postgresql", url, path))


def report(r: dict[str, Any]) -> None:
    """One backend's line, printed as soon as it is measured."""
    target = TARGETS.get(r["backend"])
    verdict = ""
    if target:
        ok = (
            r["rows_per_s"] >= target["rps"]
            and r["ratio"] <= target["ratio"]
            and r["peak_rss_mb"] < target["rss_mb"]
        )
        verdict = (
            f"{'met' if ok else 'MISSED'} (>= {target['rps']:,} rows/s, "
            f"<= {target['ratio']:g}x, < {target['rss_mb']} MB)"
        )
    print(
        f"{r['backend']:<11}{r['rows']:>10,}{r['seconds']:>9.1f}{r['rows_per_s']:>9,.0f}"
        f"{r['baseline_rows_per_s']:>12,.0f}{r['ratio']:>7.1f}x{r['peak_rss_mb']:>7.0f} MB"
        f"  {verdict}"
    )
    print(f"{'':<11}counts {r['counts']}, warnings {r['warnings']:,}", flush=True)


if __name__ == "__main__":
    main()
