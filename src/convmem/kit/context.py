"""Per-process state shared by requests: settings, database, caches, and what
the composition root (`convmem.wiring`) hands the domains."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from anyio import CapacityLimiter
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from convmem.kit.credentials import CredentialCache
from convmem.kit.db import Database
from convmem.kit.groupcommit import GroupCommit
from convmem.kit.hooks import Hooks
from convmem.kit.ratelimit import RateLimiter
from convmem.settings import Settings

# (session, username, password) -> the account SID they act for, or None.
CredentialCheck = Callable[[Session, str, str], str | None]


@dataclass
class AppContext:
    settings: Settings
    db: Database
    verify_credentials: CredentialCheck
    hooks: Hooks = field(default_factory=Hooks)
    # Background job handlers by operation kind.
    jobs: Mapping[str, Callable[..., None]] = field(default_factory=dict)
    # What each store accepts, cached per process (see profiles.store_schema).
    schemas: dict[str, Any] = field(default_factory=dict)
    credentials: CredentialCache = field(init=False)
    rate_limiter: RateLimiter | None = field(init=False)
    # Threads for the data plane's work off the event loop (bulk writes, SQLite
    # writes that wait for the lock, credential checks): few, on purpose.
    threads: CapacityLimiter = field(init=False)
    _gates: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(init=False, default_factory=dict)
    # Each event loop's queues of SQLite writes and reads (kit.groupcommit).
    commit_queues: dict[asyncio.AbstractEventLoop, GroupCommit] = field(
        init=False, default_factory=dict
    )
    read_queues: dict[asyncio.AbstractEventLoop, GroupCommit] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.credentials = CredentialCache(self.settings.credential_cache_seconds)
        self.rate_limiter = (
            RateLimiter(self.settings.rate_limit_per_second, self.settings.rate_limit_burst)
            if self.settings.rate_limit_per_second > 0
            else None
        )
        self.threads = CapacityLimiter(self.settings.request_threads)

    def write_gate(self) -> asyncio.Lock:
        """The lock this process's SQLite write requests queue on (one per event loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate

    def group_commit(self) -> GroupCommit:
        """The queue this process's SQLite data-plane writes share transactions
        through (one per event loop; see kit.groupcommit)."""
        loop = asyncio.get_running_loop()
        commits = self.commit_queues.get(loop)
        if commits is None:
            commits = self.commit_queues[loop] = GroupCommit(
                self.db, self.write_gate(), self.threads
            )
        return commits

    def group_read(self) -> GroupCommit:
        """The same for SQLite data-plane reads (read transactions; no lock)."""
        loop = asyncio.get_running_loop()
        reads = self.read_queues.get(loop)
        if reads is None:
            reads = self.read_queues[loop] = GroupCommit(
                self.db, asyncio.Lock(), self.threads, write=False
            )
        return reads


def get_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx
