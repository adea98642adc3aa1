"""A small client of a convmem server's import API, for `convmem import`:
plain HTTP (stdlib urllib), so the CLI needs nothing more than the server."""

from __future__ import annotations

import base64
import csv
import io
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

TERMINAL = ("COMPLETED", "FAILED")


class ClientError(Exception):
    """The server refused a request; the message is its error message."""


class ImportClient:
    def __init__(self, base_url: str, account: str, token: str, *, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        credentials = base64.b64encode(f"{account}:{token}".encode()).decode()
        self.auth = {"Authorization": f"Basic {credentials}"}
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {**self.auth, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        return _json(request, self.timeout)

    def store_traits(self, store_id: str) -> dict[str, list[str]]:
        """Trait names of each trait group of the store."""
        groups: dict[str, list[str]] = {}
        query = "?pageSize=100&includeTraits=true"
        while True:
            page = self.call("GET", f"/v1/ControlPlane/Stores/{store_id}/TraitGroups{query}")
            for group in page.get("traitGroups", []):
                groups[group["displayName"]] = list((group.get("traits") or {}).keys())
            token = (page.get("meta") or {}).get("nextToken")
            if not token:
                return groups
            query = f"?pageSize=100&includeTraits=true&pageToken={urllib.parse.quote(token)}"

    def create(
        self, store_id: str, path: Path, mappings: list[dict[str, str]], *, dry_run: bool
    ) -> dict[str, str]:
        body = {
            "filename": path.name[:255],
            "fileSize": path.stat().st_size,
            "columnMappings": mappings,
        }
        suffix = "?dryRun=true" if dry_run else ""
        result: dict[str, str] = self.call(
            "POST", f"/v1/Stores/{store_id}/Profiles/Imports{suffix}", body
        )
        return result

    def upload(self, url: str, path: Path, progress: Callable[[int], None]) -> None:
        """One PUT of the whole file to the pre-signed URL (no account credentials)."""
        size = path.stat().st_size
        with path.open("rb") as handle:
            request = urllib.request.Request(
                url,
                data=_Reporting(handle, progress),
                method="PUT",
                headers={"Content-Length": str(size), "Content-Type": "text/csv"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                raise ClientError(_message(exc)) from None

    def follow(self, store_id: str, import_id: str, *, interval: float = 0.5) -> Iterator[Any]:
        """The import's status, again and again, until it is COMPLETED or FAILED."""
        while True:
            status = self.call("GET", f"/v1/Stores/{store_id}/Profiles/Imports/{import_id}")
            yield status
            if status["status"] in TERMINAL:
                return
            time.sleep(interval)


def read_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def parse_maps(maps: list[str]) -> list[dict[str, str]]:
    """`column=Group.trait` options as column mappings."""
    mappings = []
    for item in maps:
        column, sep, target = item.partition("=")
        group, dot, trait = target.partition(".")
        if not sep or not dot or not column or not group or not trait:
            raise ValueError(f"--map {item!r}: expected column=Group.trait")
        mappings.append({"columnName": column, "traitGroup": group, "traitName": trait})
    return mappings


def infer_maps(header: list[str], traits: dict[str, list[str]]) -> list[dict[str, str]]:
    """Columns named `Group.trait`, or named like a trait of exactly one group."""
    owners: dict[str, list[str]] = {}
    for group, names in traits.items():
        for name in names:
            owners.setdefault(name, []).append(group)
    mappings = []
    for column in header:
        group, dot, trait = column.partition(".")
        if dot and trait in traits.get(group, []):
            mappings.append({"columnName": column, "traitGroup": group, "traitName": trait})
        elif len(owners.get(column, [])) == 1:
            mappings.append(
                {"columnName": column, "traitGroup": owners[column][0], "traitName": column}
            )
    return mappings


class _Reporting(io.RawIOBase):
    def __init__(self, inner: IO[bytes], progress: Callable[[int], None]) -> None:
        self.inner, self.progress = inner, progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size if size and size > 0 else 1 << 20)
        self.progress(len(chunk))
        return chunk


def _json(request: urllib.request.Request, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise ClientError(_message(exc)) from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach {request.full_url.split('?')[0]}: {exc.reason}") from None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = orjson.loads(exc.read())
        return f"{exc.code}: {body.get('message', body)}"
    except (orjson.JSONDecodeError, AttributeError):
        return f"{exc.code}: {exc.reason}"
