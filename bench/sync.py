"""Data-mapping sync throughput against a live `convmem serve`.

Generates 200,000 people (the imports benchmark's generator: emails, names,
phones in mixed formats, 10% of rows repeating an earlier person), stores them
as a Parquet file and as a PostgreSQL table, registers both as datasets and
syncs each into a store through a data mapping (FULL). Printed per backend and
source: rows/s of the sync, a same-run baseline of reading the source alone
(convmem's own reader, no writes), and the same rows imported as a CSV in the
same run. Target: a sync within 3x of the import pipeline's rows/s.

    python bench/sync.py [--rows 200000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import live_server, scratch_postgres  # noqa: E402
from imports import MAPPINGS, generate  # noqa: E402
from imports import run as run_import  # noqa: E402
from tests.live import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402

from convmem.datasets.sources import open_source  # noqa: E402
from convmem.settings import Settings  # noqa: E402

TARGET_RATIO = 3.0  # sync seconds / import seconds, at most
SOURCE_TABLE = "bench_people"


def prepare(csv_path: Path, parquet_path: Path) -> Any:
    """The generated CSV as a Parquet file (all text, as exported) with an id."""
    table = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(
            column_types={m["columnName"]: pa.string() for m in MAPPINGS}
        ),
    )
    table = table.add_column(0, "id", pa.array(range(1, table.num_rows + 1), pa.int64()))
    pq.write_table(table, parquet_path, row_group_size=50_000)
    return table


def load_table(url: str, table: Any) -> None:
    columns = [m["columnName"] for m in MAPPINGS]
    with psycopg.connect(url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SOURCE_TABLE}")
        conn.execute(
            f"CREATE TABLE {SOURCE_TABLE} (id bigint PRIMARY KEY, "
            + ", ".join(f"{c} text" for c in columns)
            + ")"
        )
        rows = zip(*(table.column(n).to_pylist() for n in ["id", *columns]), strict=True)
        with conn.cursor().copy(f"COPY {SOURCE_TABLE} (id, {', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        conn.execute(f"ANALYZE {SOURCE_TABLE}")


def read_alone(source: dict[str, Any], data_dir: Path) -> float:
    """Seconds for convmem's reader to read every mapped column, writing nothing."""
    settings = Settings(data_dir=data_dir, dataset_sql_hosts="127.0.0.1")
    reader = open_source(source, settings)
    start = time.perf_counter()
    key = "id" if source["type"] == "SQL" else None
    count = 0
    for rows, _ in reader.read(
        [m["columnName"] for m in MAPPINGS], size=5000, after=None, order=None, key=key
    ):
        count += len(rows)
    assert count > 0
    return time.perf_counter() - start


def sync(base: str, store_name: str, source: dict[str, Any]) -> tuple[float, dict[str, int]]:
    client = httpx.Client(base_url=base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=600)
    op = client.post("/v1/ControlPlane/Stores", json={"displayName": store_name})
    store_id = client.get(op.headers["Location"]).json()["result"]["id"]
    dataset = client.post(
        "/v1/ControlPlane/Datasets", json={"displayName": store_name, "source": source}
    )
    assert dataset.status_code == 201, dataset.text
    created = client.post(
        f"/v1/ControlPlane/Stores/{store_id}/DataMappings",
        json={
            "displayName": "bench",
            "mappingTo": {
                "type": "TRAITS",
                "mappings": [
                    {
                        "expression": m["columnName"],
                        "traitGroup": "Contact",
                        "traitName": m["traitName"],
                    }
                    for m in MAPPINGS
                ],
            },
            "mappingFrom": {"type": "DATASET", "datasetId": dataset.json()["id"]},
            "sync": {"keyField": "id"},
        },
    )
    assert created.status_code == 202, created.text
    mapping_id = client.get(created.headers["Location"]).json()["result"]["id"]
    syncs = f"/v1/ControlPlane/Stores/{store_id}/DataMappings/{mapping_id}/Syncs"
    start = time.perf_counter()
    started = client.post(syncs, json={"mode": "FULL"})
    assert started.status_code == 202, started.text
    url = f"{syncs}/{started.json()['syncId']}"
    while (status := client.get(url).json())["status"] not in ("COMPLETED", "FAILED"):
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    assert status["status"] == "COMPLETED", status
    client.close()
    return seconds, status["counts"]


def run(name: str, url: str | None, csv_path: Path, table: Any, parquet: Path) -> None:
    rows = table.num_rows
    imported = run_import(name, url, csv_path)
    import_rps = imported["rows_per_s"]
    sources: list[tuple[str, dict[str, Any]]] = [
        ("parquet", {"type": "PARQUET", "location": parquet.name})
    ]
    with contextlib.ExitStack() as stack:
        source_url = stack.enter_context(scratch_postgres())
        if source_url:
            load_table(source_url, table)
            sources.append(("pg table", {"type": "SQL", "url": source_url, "table": SOURCE_TABLE}))
        _measure(name, url, rows, import_rps, sources, parquet)


def _measure(
    name: str,
    url: str | None,
    rows: int,
    import_rps: float,
    sources: list[tuple[str, dict[str, Any]]],
    parquet: Path,
) -> None:
    with live_server(
        url, CONVMEM_JOB_POLL_SECONDS="0.05", CONVMEM_DATASET_SQL_HOSTS="127.0.0.1"
    ) as (base, data_dir, _):
        (data_dir / "datasets").mkdir(exist_ok=True)
        shutil.copy(parquet, data_dir / "datasets" / parquet.name)
        for label, source in sources:
            seconds, counts = sync(base, f"bench-{label.replace(' ', '-')}", source)
            alone = read_alone(source, data_dir)
            assert counts["read"] == rows, counts
            ratio = import_rps / (rows / seconds)
            verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
            print(
                f"{name:<11}{label:<10}{rows:>9,}{seconds:>9.1f}{rows / seconds:>9,.0f}"
                f"{rows / alone:>12,.0f}{import_rps:>10,.0f}{ratio:>8.2f}x  "
                f"{verdict} (<= {TARGET_RATIO:g}x the import)",
                flush=True,
            )
            print(f"{'':<21}counts {counts}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, parquet = Path(tmp) / "people.csv", Path(tmp) / "people.parquet"
        generate(csv_path, args.rows)
        table = prepare(csv_path, parquet)
        print(
            f"{'backend':<11}{'source':<10}{'rows':>9}{'seconds':>9}{'rows/s':>9}"
            f"{'read alone':>12}{'import/s':>10}{'import/sync':>12}",
            flush=True,
        )
        if args.backend in ("sqlite", "both"):
            run("sqlite", None, csv_path, table, parquet)
        if args.backend in ("postgresql", "both"):
            with scratch_postgres() as url:
                if url:
                    run("postgresql", url, csv_path, table, parquet)


if __name__ == "__main__":
    main()
