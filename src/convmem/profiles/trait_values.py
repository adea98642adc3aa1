"""All SQL of trait values.

A profile's values of one trait group live in one row (`ProfileTraitGroup`):
`{trait name: [value, updated_at, def_key]}`. Reads expand a row into one
`TraitValue` per trait; writes merge into the row (a write names only the
traits it changes), so two writes of different traits of one group both land.
Writers of one profile are serialized by its row lock (`lock_profiles`), and
SQLite has one writer at a time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, select, text, tuple_
from sqlalchemy.orm import Session

from convmem.kit.db import core, is_postgres
from convmem.kit.prepared import Prepared, driver_rows, sqlite_in_chunks
from convmem.profiles.models import ProfileTraitGroup

G = ProfileTraitGroup

# (value, updated_at, def_key) of one trait.
Entry = tuple[Any, dt.datetime, "str | None"]
# What to write: (profile_id, group) -> trait name -> entry.
Changes = dict[tuple[str, str], dict[str, Entry]]


class TraitValue(NamedTuple):
    """One stored trait value, as reads hand it out."""

    profile_id: str
    trait_key: str  # "<group>.<trait>": the order traits are listed in
    group_name: str
    name: str
    value: Any
    updated_at: dt.datetime
    def_key: str | None


_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # UTC; sorts as it compares


@lru_cache(maxsize=1024)  # a batch's values share one timestamp
def stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(_STAMP)


@lru_cache(maxsize=4096)
def parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _STAMP).replace(tzinfo=dt.UTC)


def expand(rows: Iterable[Any]) -> list[TraitValue]:
    """The values of (profile_id, group_name, traits) rows, in trait_key order."""
    values = [
        TraitValue(
            row.profile_id,
            f"{row.group_name}.{name}",
            row.group_name,
            name,
            entry[0],
            parse_stamp(entry[1]),
            entry[2],
        )
        for row in rows
        if row.traits
        for name, entry in row.traits.items()
    ]
    values.sort(key=lambda v: (v.profile_id, v.trait_key))
    return values


def group_rows(store_id: str, changes: Changes) -> list[dict[str, Any]]:
    """Rows of `profile_trait_groups` holding `changes` (to merge into what is stored)."""
    return [
        {
            "store_id": store_id,
            "profile_id": profile_id,
            "group_name": group,
            "traits": {
                name: [value, stamp(updated_at), def_key]
                for name, (value, updated_at, def_key) in entries.items()
            },
        }
        for (profile_id, group), entries in changes.items()
    ]


# How an insert merges into a stored row: the new traits replace theirs, the
# others stay (SQLite's json_patch replaces non-object members whole; each
# entry is an array, so an OBJECT-typed value is never merged into).
CONFLICT_KEY = ("store_id", "profile_id", "group_name")
SQLITE_CONFLICT = (
    f"ON CONFLICT ({', '.join(CONFLICT_KEY)}) "
    "DO UPDATE SET traits = json_patch(traits, excluded.traits)"
)
POSTGRES_CONFLICT = (
    f"ON CONFLICT ({', '.join(CONFLICT_KEY)}) "
    "DO UPDATE SET traits = profile_trait_groups.traits || excluded.traits"
)


# Removing one trait, optionally only while it is still the value written
# under `def_key` (the purge of a deleted definition must not take a value
# written meanwhile under a new definition of the same name).
_REMOVE = {
    "sqlite": (
        "UPDATE profile_trait_groups SET traits = json_remove(traits, '$.\"' || :name || '\"') "
        "WHERE store_id = :sid AND profile_id = :pid AND group_name = :grp"
    ),
    "postgresql": (
        "UPDATE profile_trait_groups SET traits = traits - CAST(:name AS text) "
        "WHERE store_id = :sid AND profile_id = :pid AND group_name = :grp"
    ),
}
_IF_DEF_KEY = {
    "sqlite": " AND json_extract(traits, '$.\"' || :name || '\"[2]') = :def_key",
    "postgresql": " AND traits -> CAST(:name AS text) ->> 2 = :def_key",
}
_DROP_EMPTY = {
    "sqlite": "traits = '{}'",
    "postgresql": "traits = CAST('{}' AS jsonb)",
}


def remove(
    session: Session,
    store_id: str,
    names: Iterable[tuple[str, str, str]],
    *,
    def_keys: Sequence[str | None] | None = None,
) -> None:
    """Remove traits given as (profile_id, group, name); with `def_keys` (one
    per trait), only a value still written under that definition."""
    names = list(names)
    if not names:
        return
    dialect = session.get_bind().dialect.name
    sql = _REMOVE[dialect] + (_IF_DEF_KEY[dialect] if def_keys is not None else "")
    params: list[dict[str, Any]] = [
        {"sid": store_id, "pid": pid, "grp": group, "name": name}
        | ({"def_key": def_keys[n]} if def_keys is not None else {})
        for n, (pid, group, name) in enumerate(names)
    ]
    conn = core(session)
    conn.execute(text(sql), params)
    # A group left with no traits is no row at all.
    conn.execute(
        delete(G.__table__).where(  # type: ignore[arg-type]
            G.store_id == bindparam("sid"),
            G.profile_id == bindparam("pid"),
            G.group_name == bindparam("grp"),
            text(_DROP_EMPTY[dialect]),
        ),
        [
            {"sid": store_id, "pid": pid, "grp": group}
            for pid, group in {(p, g) for p, g, _ in names}
        ],
    )


def remove_all(session: Session, store_id: str, profile_id: str) -> None:
    """Every trait value of a profile."""
    core(session).execute(delete(G).where(G.store_id == store_id, G.profile_id == profile_id))


_OF_ONE = Prepared(
    select(G.profile_id, G.group_name, G.traits).where(
        G.store_id == bindparam("store_id"), G.profile_id == bindparam("profile_id")
    )
)


def of(
    session: Session,
    store_id: str,
    profile_ids: Iterable[str],
    groups: Sequence[str] | None = None,
) -> list[TraitValue]:
    """The stored values of some profiles (of some groups), live or not."""
    profile_ids = list(profile_ids)
    if len(profile_ids) == 1 and groups is None:  # the hot path: a prebuilt statement
        return expand(_OF_ONE.all(session, store_id=store_id, profile_id=profile_ids[0]))
    if groups is None and not is_postgres(session):
        return expand(_of_many_sqlite(session, store_id, profile_ids))
    query = select(G.profile_id, G.group_name, G.traits).where(
        G.store_id == store_id, G.profile_id.in_(profile_ids)
    )
    if groups is not None:
        query = query.where(G.group_name.in_(list(groups)))
    return expand(core(session).execute(query))


class _Row(NamedTuple):
    profile_id: str
    group_name: str
    traits: dict[str, Any]


def _of_many_sqlite(session: Session, store_id: str, profile_ids: list[str]) -> list[_Row]:
    """SQLite: the rows of many profiles (an import batch's stored ones) on the
    driver, without SQLAlchemy's per-parameter and per-row processing."""
    rows: list[_Row] = []
    for marks, chunk in sqlite_in_chunks(profile_ids):
        sql = (
            "SELECT profile_id, group_name, traits FROM profile_trait_groups "
            f"WHERE store_id = ? AND profile_id IN ({marks})"
        )
        rows.extend(
            _Row(pid, group, json.loads(traits))
            for pid, group, traits in driver_rows(session, sql, [store_id, *chunk])
        )
    return rows


def window(session: Session, store_id: str, after: tuple[str, str] | None, limit: int) -> list[Any]:
    """The next `limit` (profile_id, group_name, traits) rows of a store in key order."""
    query = select(G.profile_id, G.group_name, G.traits).where(G.store_id == store_id)
    if after is not None:
        query = query.where(tuple_(G.profile_id, G.group_name) > tuple_(*after))
    return list(core(session).execute(query.order_by(G.profile_id, G.group_name).limit(limit)))
