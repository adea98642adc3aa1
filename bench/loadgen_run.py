"""Run bench/loadgen.py in its own process and read its JSON figures."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.live import ACCOUNT_SID, AUTH_TOKEN

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
