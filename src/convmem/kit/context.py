"""Per-process state shared by requests: settings, database, caches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from convmem.accounts.service import CredentialCache
from convmem.kit.db import Database
from convmem.kit.ratelimit import RateLimiter
from convmem.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    credentials: CredentialCache = field(init=False)
    rate_limiter: RateLimiter | None = field(init=False)
    _gates: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.credentials = CredentialCache(self.settings.credential_cache_seconds)
        self.rate_limiter = (
            RateLimiter(self.settings.rate_limit_per_second, self.settings.rate_limit_burst)
            if self.settings.rate_limit_per_second > 0
            else None
        )

    def write_gate(self) -> asyncio.Lock:
        """The lock this process's SQLite write requests queue on (one per event loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate


def get_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx
