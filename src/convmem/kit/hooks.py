"""Explicit hooks: how a domain reacts to a change owned by a domain below it.

Imports flow one way (kit -> accounts -> operations -> stores -> identity ->
traits -> profiles). When a lower domain's change needs work from a higher one
(a new store needs its default trait groups; an identity settings change must
keep the traits promoted to its idTypes), the lower domain calls a hook with
plain arguments, and the composition root (`convmem.wiring`) connects the
higher domains' handlers. Nothing connects itself on import, and every service
that fires a hook receives it as an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec

from sqlalchemy.orm import Session

P = ParamSpec("P")


@dataclass
class Hook(Generic[P]):
    """Handlers run in order, in the caller's transaction; one that raises
    fails the change (and the transaction rolls back)."""

    name: str
    handlers: list[Callable[P, None]] = field(default_factory=list)

    def connect(self, handler: Callable[P, None]) -> None:
        self.handlers.append(handler)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for handler in self.handlers:
            handler(*args, **kwargs)


IdConfigs = list[dict[str, Any]]


@dataclass
class Hooks:
    # (session, store_id): a store was created; add what every store starts with.
    store_created: Hook[[Session, str]] = field(default_factory=lambda: Hook("store_created"))
    # (session, store_id, configs before, configs after): identity settings are
    # about to change; raise to refuse the change.
    id_configs_changing: Hook[[Session, str, IdConfigs, IdConfigs]] = field(
        default_factory=lambda: Hook("id_configs_changing")
    )
    # (session, store_id, group, trait names or None for the whole group):
    # traits are about to be deleted; raise to refuse (a mapping writes them).
    traits_removing: Hook[[Session, str, str, list[str] | None]] = field(
        default_factory=lambda: Hook("traits_removing")
    )
    # (session, account_sid, dataset_id): a dataset is about to be deleted;
    # raise to refuse (a mapping reads it).
    dataset_deleting: Hook[[Session, str, str]] = field(
        default_factory=lambda: Hook("dataset_deleting")
    )
