"""The write path shared by create, bulk upsert, PATCH and identifier writes:
lock, resolve identities, merge, then write traits and identifiers, all in the
caller's transaction and with set-based statements for the whole batch."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.orm import Session

from convmem.identity import resolution
from convmem.identity.normalize import blocking_keys
from convmem.identity.resolution import Group, Key
from convmem.kit import ids
from convmem.kit.db import RetryTransaction, utcnow
from convmem.kit.errors import Conflict, ProfileNotFound
from convmem.profiles import repository as repo
from convmem.profiles.rules import Record, StoreSchema

FUZZY_CANDIDATES = 500


def find_holders(
    session: Session, store_id: str, schema: StoreSchema, keys: Iterable[Key]
) -> dict[Key, set[str]]:
    """Canonical profiles holding each key (or, for fuzzy idTypes, a similar value)."""
    keys = set(keys)
    holders = repo.holders_exact(session, store_id, keys)
    for id_type, value in keys:
        config = schema.configs.get(id_type)
        if config is None or not config.fuzzy:
            continue
        prefix, suffix = blocking_keys(value)
        for candidate, profile_id in repo.fuzzy_candidates(
            session, store_id, id_type, prefix, suffix, limit=FUZZY_CANDIDATES
        ):
            if fuzz.ratio(value, candidate) >= config.threshold:
                holders.setdefault((id_type, value), set()).add(profile_id)
    return holders


def write(
    session: Session, store_id: str, schema: StoreSchema, records: Sequence[Record]
) -> list[str]:
    """Resolve and apply `records`; returns each record's canonical profile id."""
    now = utcnow()
    all_keys = {key for record in records for key in record.keys}
    # Every lock of a write is taken in one global order: identifier keys
    # (sorted), then profile rows with their aliases (sorted by id). A profile
    # that changed between the look-up and its lock means the plan is stale;
    # rather than lock more rows out of order, the whole transaction restarts.
    repo.lock_keys(session, store_id, all_keys)
    holders = find_holders(session, store_id, schema, all_keys)
    groups = resolution.plan(
        [r.keys for r in records],
        [r.anchor for r in records],
        holders,
        schema.configs,
        schema.rules,
    )
    involved = sorted({p for g in groups for p in g.profiles})
    state = repo.lock_profiles(session, store_id, involved)
    anchors = {r.anchor for r in records if r.anchor}
    gone = sorted(anchors - set(state))
    if gone:
        raise ProfileNotFound(f"Profile {gone[0]} not found")
    if len(state) != len(involved) or any(state[p] is not None for p in involved):
        raise RetryTransaction("profiles merged or deleted by a concurrent write")
    _check_unique_outside_rules(holders, groups, records, schema)

    result: list[str] = [""] * len(records)
    new_profiles: list[dict[str, Any]] = []
    for group in groups:
        canonical = group.canonical
        if canonical is None:
            canonical = ids.new_id(ids.PROFILE)
            new_profiles.append(
                {
                    "store_id": store_id,
                    "id": canonical,
                    "merged_into": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for index in group.records:
            result[index] = canonical
    for group in groups:
        if group.merged:
            merge(session, store_id, schema, group, now)

    created = {p["id"] for p in new_profiles}
    upserts = _trait_changes(session, store_id, schema, records, result, now)
    identifiers, per_type = _identifier_rows(store_id, schema, records, result, now)
    # The inserts of the whole batch: one statement on PostgreSQL, three on SQLite.
    if repo.insert_rows(session, new_profiles, upserts, identifiers):
        # New profiles only need trimming when one write brought more values than the limit.
        touched = {
            (p, t)
            for (p, t), n in per_type.items()
            if p not in created or n > schema.configs[t].limit
        }
        enforce_limits(session, store_id, schema, touched)
    repo.touch(session, store_id, set(result) - created, now)
    return result


def _check_unique_outside_rules(
    holders: dict[Key, set[str]],
    groups: list[Group],
    records: Sequence[Record],
    schema: StoreSchema,
) -> None:
    """A unique idType that is not a matching rule cannot merge, so a value
    held by another profile is a conflict."""
    group_of = {i: g for g in groups for i in g.records}
    for i, record in enumerate(records):
        for id_type, value in record.keys:
            config = schema.configs.get(id_type)
            if config is None or not config.unique or id_type in schema.rules:
                continue
            others = set(holders.get((id_type, value), ())) - set(group_of[i].profiles)
            if others:
                raise Conflict(
                    f"{id_type} '{value}' belongs to profile {min(others)}; {id_type} is unique "
                    "and not a matching rule, so the profiles cannot be merged"
                )


def merge(
    session: Session, store_id: str, schema: StoreSchema, group: Group, now: dt.datetime
) -> None:
    """Merge group.merged into group.canonical: traits (newest wins), identifiers,
    everything else that belongs to a profile; the merged ids become aliases."""
    canonical = group.canonical
    assert canonical is not None
    traits = repo.traits_of(session, store_id, group.profiles)
    best: dict[str, Any] = {}
    # Values of deleted traits are not carried over (they go with the merged profile).
    for row in (r for r in traits if schema.is_live(r.trait_key, r.def_key)):
        current = best.get(row.trait_key)
        # Newest wins; on a tie the canonical profile keeps its value.
        if (
            current is None
            or row.updated_at > current.updated_at
            or (row.updated_at == current.updated_at and row.profile_id == canonical)
        ):
            best[row.trait_key] = row
    winners = [
        {
            "store_id": store_id,
            "profile_id": canonical,
            "trait_key": row.trait_key,
            "group_name": row.group_name,
            "name": row.name,
            "value": row.value,
            "updated_at": row.updated_at,
            "def_key": row.def_key,
        }
        for row in best.values()
        if row.profile_id != canonical
    ]
    for merged in group.merged:
        repo.delete_traits(
            session, store_id, merged, [r.trait_key for r in traits if r.profile_id == merged]
        )
        repo.move_identifiers(session, store_id, merged, canonical)
        repo.repoint(session, store_id, merged, canonical)
        repo.mark_merged(session, store_id, merged, canonical, now)
        repo.record_merge(
            session,
            {
                "store_id": store_id,
                "id": ids.new_id(ids.ROW),
                "canonical_id": canonical,
                "merged_id": merged,
                "rule": group.rules.get(merged, "anchor")[:30],
                "merged_at": now,
            },
        )
    repo.upsert_traits(session, winners)
    enforce_limits(session, store_id, schema, {(canonical, t) for t in schema.configs})


def _trait_changes(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    targets: list[str],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Deletes the traits set to null; returns the rows to upsert (later records
    win over earlier ones for the same profile and trait)."""
    upserts: dict[tuple[str, str], dict[str, Any]] = {}
    deletes: dict[str, set[str]] = defaultdict(set)
    for record, profile_id in zip(records, targets, strict=True):
        for w in record.writes:
            if w.value is None:
                upserts.pop((profile_id, w.key), None)
                deletes[profile_id].add(w.key)
                continue
            deletes[profile_id].discard(w.key)
            upserts[(profile_id, w.key)] = {
                "store_id": store_id,
                "profile_id": profile_id,
                "trait_key": w.key,
                "group_name": w.group,
                "name": w.name,
                "value": w.value,
                "updated_at": now,
                "def_key": schema.def_keys[w.key],
            }
    for profile_id, keys in deletes.items():
        repo.delete_traits(session, store_id, profile_id, keys)
    return list(upserts.values())


def identifier_row(
    store_id: str, profile_id: str, schema: StoreSchema, key: Key, now: dt.datetime
) -> dict[str, Any]:
    id_type, value = key
    config = schema.configs[id_type]
    prefix, suffix = blocking_keys(value)
    return {
        "store_id": store_id,
        "profile_id": profile_id,
        "id_type": id_type,
        "value": value,
        "unique_value": value if config.unique else None,
        "sort_key": ids.new_id(ids.ROW),
        "fuzzy": config.fuzzy,
        "block_prefix": prefix,
        "block_suffix": suffix,
        "created_at": now,
    }


def _identifier_rows(
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    targets: list[str],
    now: dt.datetime,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """Identifier rows to add, and how many per (profile, idType)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    per_type: dict[tuple[str, str], int] = defaultdict(int)
    for record, profile_id in zip(records, targets, strict=True):
        for key in record.keys:
            if key[0] in schema.configs and (profile_id, *key) not in rows:
                rows[(profile_id, *key)] = identifier_row(store_id, profile_id, schema, key, now)
                per_type[(profile_id, key[0])] += 1
    return list(rows.values()), per_type


def enforce_limits(
    session: Session, store_id: str, schema: StoreSchema, pairs: Iterable[tuple[str, str]]
) -> None:
    """Keep at most `limit` values per (profile, idType): fifo drops the oldest,
    lifo the most recently added."""
    by_profile: dict[str, set[str]] = defaultdict(set)
    for profile_id, id_type in pairs:
        by_profile[profile_id].add(id_type)
    if not by_profile:
        return
    values: dict[tuple[str, str], list[str]] = defaultdict(list)
    # One query for the whole batch, rows in creation order.
    for row in repo.identifiers_of(session, store_id, list(by_profile)):
        if row.id_type in by_profile[row.profile_id]:
            values[(row.profile_id, row.id_type)].append(row.value)
    for (profile_id, id_type), ordered in values.items():
        config = schema.configs.get(id_type)
        if config is None or len(ordered) <= config.limit:
            continue
        excess = len(ordered) - config.limit
        drop = ordered[-excess:] if config.lifo else ordered[:excess]
        repo.delete_identifiers(session, store_id, profile_id, id_type, drop)
