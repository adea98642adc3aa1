"""A short-lived cache of verified credentials (per process)."""

from __future__ import annotations

import hashlib
import threading
import time


class CredentialCache:
    """Remembers verified credentials briefly so most requests skip the database.

    Keyed by the username and a SHA-256 of the password, never the password
    itself. A revoked credential stays valid at most `ttl` seconds per process.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bytes], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str, password: str) -> tuple[str, bytes]:
        return username, hashlib.sha256(password.encode()).digest()

    def get(self, username: str, password: str) -> str | None:
        entry = self._entries.get(self._key(username, password))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, username: str, password: str, account_sid: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[self._key(username, password)] = (
                account_sid,
                time.monotonic() + self.ttl,
            )
