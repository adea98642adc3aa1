"""What every benchmark shares: a live server per backend (with a scratch
PostgreSQL database), and bench/loadgen.py run in its own process."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from tests.live import ACCOUNT_SID, AUTH_TOKEN, start_server, start_worker

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
T = TypeVar("T")


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A new PostgreSQL database for one benchmark, dropped afterwards (None
    when no server answers)."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as conn:
            name = f"convmem_bench_{secrets.token_hex(3)}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        print("PostgreSQL not reachable at 127.0.0.1:5432; skipped", file=sys.stderr)
        yield None
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def live_server(
    database_url: str | None, *, separate_worker: bool = False, **env: str
) -> Iterator[tuple[str, Path, int]]:
    """A `convmem serve` for benchmarking (no access log): (base URL, data dir, pid).

    With `separate_worker`, the background jobs run in a `convmem worker`
    process of their own instead of inside the server."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        quiet = {"CONVMEM_ACCESS_LOG": "false", "CONVMEM_LOG_LEVEL": "WARNING", **env}
        server, base = start_server(
            data_dir, database_url=database_url, workers=not separate_worker, **quiet
        )
        worker = (
            start_worker(data_dir, database_url=database_url, **quiet) if separate_worker else None
        )
        try:
            yield base, data_dir, server.popen.pid
        finally:
            server.stop()
            if worker is not None:
                worker.stop()


def each_backend(args: argparse.Namespace, run: Callable[[str, str | None], list[T]]) -> list[T]:
    """`run(name, database_url)` on SQLite, then PostgreSQL when one answers."""
    rows: list[T] = []
    if args.backend in ("sqlite", "both"):
        rows += run("sqlite", None)
    if args.backend in ("postgresql", "both"):
        with scratch_postgres() as url:
            if url:
                rows += run("postgresql", url)
    return rows


LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


def loadgen(
    base: str,
    scenario: str,
    *,
    duration: float,
    concurrency: int,
    store: str = "",
    data_file: Path | None = None,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    command = [
        sys.executable, str(LOADGEN),
        "--url", base,
        "--auth", f"{ACCOUNT_SID}:{AUTH_TOKEN}",
        "--scenario", scenario,
        "--duration", str(duration),
        "--concurrency", str(concurrency),
        "--store", store,
        "--data", str(data_file or ""),
        "--seed", secrets.token_hex(3),
        *(extra or []),
    ]  # fmt: skip
    result: dict[str, Any] = json.loads(subprocess.check_output(command))
    return result
