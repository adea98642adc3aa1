"""A small, fast HTTP/1.1 load generator (keep-alive connections on asyncio).

Runs as its own process so the server under test and the load do not share an
interpreter. Prints one JSON object with throughput and latency percentiles.

    python bench/loadgen.py --url http://127.0.0.1:8000 --scenario healthz --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Scenario:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.store = args.store
        data = json.loads(Path(args.data).read_text()) if args.data else {}
        self.ids: list[str] = data.get("ids", [])
        self.emails: list[str] = data.get("emails", [])
        self.counter = 0

    def next(self) -> tuple[str, str, bytes | None]:
        kind = self.args.scenario
        base = f"/v1/Stores/{self.store}/Profiles"
        if kind == "healthz":
            return "GET", "/healthz", None
        if kind == "fetch":
            return "GET", f"{base}/{random.choice(self.ids)}", None
        if kind == "lookup":
            body = {"idType": "email", "value": random.choice(self.emails)}
            return "POST", f"{base}/Lookup", json.dumps(body).encode()
        if kind in ("create", "floor"):
            self.counter += 1
            # One in five creates resolves to an existing profile (an update).
            if self.emails and random.random() < 0.2:
                email = random.choice(self.emails)
            else:
                email = f"load-{self.args.seed}-{self.counter}@example.com"
            body = {
                "traits": {
                    "Contact": {
                        "email": email,
                        "firstName": "Load",
                        "lastName": f"Tester{self.counter}",
                        "city": "San Francisco",
                    }
                }
            }
            # The floor: the same body, authenticated and parsed, nothing else.
            path = base if kind == "create" else f"/_bench/floor/{self.store}"
            return "POST", path, json.dumps(body).encode()
        if kind == "contend":
            # Overlapping identifiers: most records bridge an email and a phone
            # that other writers use too, so writes merge profiles all the time.
            pool = self.args.pool
            contact: dict[str, str] = {"firstName": f"c{random.randrange(1000)}"}
            if random.random() < 0.8:
                contact["email"] = f"contend-{random.randrange(pool)}@example.com"
            if random.random() < 0.6 or "email" not in contact:
                contact["phone"] = f"+1415{random.randrange(pool):07d}"
            body = {"traits": {"Contact": contact}}
            return "POST", base, json.dumps(body).encode()
        raise SystemExit(f"unknown scenario {kind}")


async def worker(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    host: str,
    auth: str,
    scenario: Scenario,
    deadline: float,
    out: list[float],
    errors: list[int],
    statuses: dict[int, int],
) -> None:
    reader, writer = connection
    try:
        while time.perf_counter() < deadline:
            method, path, body = scenario.next()
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
                "Connection: keep-alive\r\n"
            )
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            start = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + (body or b""))
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            out.append(time.perf_counter() - start)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    auth = base64.b64encode(args.auth.encode()).decode()
    scenario = Scenario(args)
    latencies: list[float] = []
    errors: list[int] = []
    statuses: dict[int, int] = {}
    host = url.hostname or "127.0.0.1"
    # Every connection is open before the clock starts: with hundreds of them,
    # setting them up would otherwise count as time without answers.
    connections = await asyncio.gather(
        *(asyncio.open_connection(host, url.port or 80) for _ in range(args.concurrency))
    )
    start = time.perf_counter()
    deadline = start + args.duration
    await asyncio.gather(
        *(
            worker(connection, host, auth, scenario, deadline, latencies, errors, statuses)
            for connection in connections
        )
    )
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "scenario": args.scenario,
        "requests": len(latencies),
        "errors": len(errors),
        "error_statuses": sorted(set(errors))[:5],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--auth", default="")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--store", default="")
    parser.add_argument("--data", default="", help="JSON file with existing ids and emails")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--pool", type=int, default=200, help="identifiers per type (contend)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
