"""Per-process state shared by requests: settings, database, caches, and what
the composition root (`convmem.wiring`) hands the domains."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from anyio import CapacityLimiter
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from convmem.kit.credentials import CredentialCache
from convmem.kit.db import Database
from convmem.kit.groupcommit import GroupCommit
from convmem.kit.hooks import Hooks
from convmem.kit.ratelimit import RateLimiter
from convmem.settings import Settings

T = TypeVar("T")

ACTIVE_STORES_LIMIT = 10_000

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
    # Stores this process last saw ACTIVE, by (account, store): what
    # data-plane requests assume and check in their first query (StoreWork).
    active_stores: dict[tuple[str, str], Any] = field(default_factory=dict)
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

    def remember_store(self, key: tuple[str, str], store: Any) -> None:
        if len(self.active_stores) >= ACTIVE_STORES_LIMIT:
            self.active_stores.clear()
        self.active_stores[key] = store

    def write_gate(self) -> asyncio.Lock:
        """The lock this process's SQLite write requests queue on (one per event loop)."""
        return _for_loop(self._gates, asyncio.Lock)

    def group_commit(self) -> GroupCommit:
        """The queue this process's SQLite data-plane writes share transactions
        through (one per event loop; see kit.groupcommit)."""
        return _for_loop(
            self.commit_queues, lambda: GroupCommit(self.db, self.write_gate(), self.threads)
        )

    def group_read(self) -> GroupCommit:
        """The same for SQLite data-plane reads (read transactions; no lock)."""
        return _for_loop(
            self.read_queues,
            lambda: GroupCommit(self.db, asyncio.Lock(), self.threads, write=False),
        )


def _for_loop(objects: dict[asyncio.AbstractEventLoop, T], make: Callable[[], T]) -> T:
    """The running event loop's object in `objects`, made on first use
    (asyncio primitives belong to one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    found = objects.get(loop)
    if found is None:
        found = objects[loop] = make()
    return found


def get_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx
