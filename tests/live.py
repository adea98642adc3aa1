"""Real `convmem` processes for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx2 as httpx

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "live-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "convmem", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def base_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        "CONVMEM_DATA_DIR": str(data_dir),
        "CONVMEM_ACCOUNT_SID": ACCOUNT_SID,
        "CONVMEM_AUTH_TOKEN": AUTH_TOKEN,
        "CONVMEM_LOG_LEVEL": "WARNING",
        # Live servers of a test session share one account (and, on PostgreSQL,
        # one database): the per-account store limit is not what they test.
        "CONVMEM_MAX_STORES_PER_ACCOUNT": "10000",
        **extra,
    }
    if database_url:
        env["CONVMEM_DATABASE_URL"] = database_url
    return env


def start_server(
    data_dir: Path, *, database_url: str | None = None, workers: bool = True, **extra: str
) -> tuple[Process, str]:
    port = free_port()
    args = ["serve", "--port", str(port), "--workers" if workers else "--no-workers"]
    process = Process(
        args, base_env(data_dir, database_url, **extra), data_dir / f"serve-{port}.log"
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"convmem serve exited:\n{process.output()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"convmem serve did not become healthy:\n{process.output()}")


def start_worker(data_dir: Path, *, database_url: str | None = None, **extra: str) -> Process:
    n = len(list(data_dir.glob("worker-*.log")))
    return Process(
        ["worker"], base_env(data_dir, database_url, **extra), data_dir / f"worker-{n}.log"
    )
