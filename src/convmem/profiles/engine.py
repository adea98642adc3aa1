"""The write path shared by create, bulk upsert, PATCH and identifier writes:
lock, resolve identities, merge, then write traits and identifiers, all in the
caller's transaction and with set-based statements for the whole batch."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from convmem.identity import resolution
from convmem.identity.normalize import blocking_keys
from convmem.identity.resolution import Group, Key
from convmem.kit import ids
from convmem.kit.db import (
    RetryTransaction,
    autocommit_until_begin,
    begin,
    first_attempt,
    in_autocommit,
    is_postgres,
    is_unique_violation,
    utcnow,
)
from convmem.kit.errors import Conflict, ProfileNotFound
from convmem.kit.prepared import pending_guard
from convmem.profiles import repository as repo
from convmem.profiles import trait_values
from convmem.profiles.rules import Record, StoreSchema

FUZZY_CANDIDATES = 500


def find_holders(
    session: Session, store_id: str, schema: StoreSchema, keys: Iterable[Key]
) -> dict[Key, set[str]]:
    """Canonical profiles holding each key (or, for fuzzy idTypes, a similar value)."""
    return _find_holders(session, store_id, schema, set(keys))[0]


def _with_fuzzy(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    keys: set[Key],
    exact: dict[Key, set[str]],
) -> dict[Key, set[str]]:
    """`exact` plus, for fuzzy idTypes, the profiles holding a similar value
    (a new mapping: `exact` is left as it is)."""
    holders = {key: set(profiles) for key, profiles in exact.items()}
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What writing one record did.

    `status` is CREATED (a new profile), UPDATED (an existing profile changed),
    MERGED (the record joined profiles: `merged` lists the ids merged away into
    `profile_id`), UNCHANGED (everything it says was already so) or REJECTED
    (nothing of it was written; `reason` says why)."""

    status: str
    profile_id: str | None = None
    merged: tuple[str, ...] = ()
    reason: str | None = None


CREATED, UPDATED, MERGED, UNCHANGED, REJECTED = (
    "created",
    "updated",
    "merged",
    "unchanged",
    "rejected",
)


def write(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    *,
    alone: bool = False,
    holders: dict[Key, set[str]] | None = None,
) -> list[Outcome]:
    """Resolve and apply `records`; one outcome per record, in order.

    A record that cannot be applied (its unique identifier belongs to a profile
    it may not merge with) is rejected alone; the others are written.

    `alone`: the caller's transaction holds nothing else, before or after, so
    a write that turns out to be one insert (new profiles only) may commit on
    its own (kit.db.autocommit_until_begin; only where that applies).

    `holders`: the holders of the records' identifiers, as `find_holders`
    found them earlier in the caller's transaction (SQLite, where nobody else
    writes meanwhile, and no fuzzy idType): not looked up again."""
    all_keys = {key for record in records for key in record.keys}
    if _may_skip_key_locks(session, schema, all_keys):
        # Without locks, a write that is one insert needs no transaction
        # around it either: `_write` begins one when more statements follow.
        if alone:
            autocommit_until_begin(session)
        try:
            return _write(session, store_id, schema, records, all_keys, holders)
        except DBAPIError as exc:
            if is_unique_violation(exc):
                raise RetryTransaction("a concurrent write added one of its identifiers") from exc
            raise
        finally:
            begin(session)  # whatever the caller runs next is in a transaction
    # Every lock of a write is taken in one global order: identifier keys
    # (sorted), then profile rows with their aliases (sorted by id). A profile
    # that changed between the look-up and its lock means the plan is stale;
    # rather than lock more rows out of order, the whole transaction restarts.
    repo.lock_keys(session, store_id, all_keys)
    return _write(session, store_id, schema, records, all_keys, holders)


def _may_skip_key_locks(session: Session, schema: StoreSchema, keys: set[Key]) -> bool:
    """A request's first attempt on PostgreSQL may go without the advisory
    locks (one round trip of a create's five) when every identifier is of an
    exact idType with enforceUnique: then the unique value index refuses a
    racing writer's insert of the same value, and the retry (which takes the
    locks) sees what that writer committed. Fuzzy and shared idTypes, and every
    retry, lock as before."""
    if not is_postgres(session) or not first_attempt(session):
        return False
    configs = schema.configs
    for id_type, _ in keys:
        config = configs.get(id_type)
        if config is None or not config.unique or config.fuzzy:
            return False
    return True


def _write(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    all_keys: set[Key],
    known: dict[Key, set[str]] | None = None,
) -> list[Outcome]:
    now = utcnow()
    found = _create_alone(session, store_id, schema, records, all_keys, now)
    if isinstance(found, Outcome):
        return [found]
    if found is None:
        found = (
            (known, known)
            if known is not None
            else _find_holders(session, store_id, schema, all_keys)
        )
    holders, exact = found
    outcomes: list[Outcome | None] = [None] * len(records)
    active = list(range(len(records)))
    while True:
        chosen = [records[i] for i in active]
        groups = resolution.plan(
            [r.keys for r in chosen],
            [r.anchor for r in chosen],
            holders,
            schema.configs,
            schema.rules,
        )
        conflicts = _unique_conflicts(holders, groups, chosen, schema)
        if not conflicts:
            break
        # Drop the conflicting records and plan again: without them, groups
        # they bridged may fall apart.
        for n, reason in conflicts.items():
            outcomes[active[n]] = Outcome(REJECTED, reason=reason)
        active = [i for n, i in enumerate(active) if n not in conflicts]
    for group in groups:  # indexes into the whole batch from here on
        group.records = [active[n] for n in group.records]
    involved = sorted({p for g in groups for p in g.profiles})
    if involved:
        begin(session)  # stored profiles change: more statements than one follow
    state = repo.lock_profiles(session, store_id, involved)
    anchors = {a for a in (records[i].anchor for i in active) if a}
    gone = sorted(anchors - set(state))
    if gone:
        raise ProfileNotFound(f"Profile {gone[0]} not found")
    if len(state) != len(involved) or any(state[p] is not None for p in involved):
        raise RetryTransaction("profiles merged or deleted by a concurrent write")

    targets: list[str] = [""] * len(records)
    new_profiles: list[dict[str, Any]] = []
    for group in groups:
        canonical = group.canonical
        if canonical is None:
            canonical = ids.new_id(ids.PROFILE)
            new_profiles.append(_profile_row(store_id, canonical, now))
        for index in group.records:
            targets[index] = canonical
    _describe_outcomes(session, store_id, schema, records, groups, targets, exact, outcomes)
    for group in groups:
        if group.merged:
            merge(session, store_id, schema, group, now)

    result = [o for o in outcomes if o is not None]
    assert len(result) == len(records)
    created = {p["id"] for p in new_profiles}
    # Unchanged records write nothing (and do not bump updated_at).
    written = [i for i in active if result[i].status != UNCHANGED]
    changes, removed = _trait_changes(schema, records, targets, written, now)
    identifiers, per_type = _identifier_rows(
        store_id, schema, records, targets, written, now, exact
    )
    traits = trait_values.group_rows(store_id, changes)
    # New profiles only need trimming when one write brought more values than the limit.
    touched = {
        (p, t) for (p, t), n in per_type.items() if p not in created or n > schema.configs[t].limit
    }
    if removed or touched or pending_guard(session) or len(active) < len(records):
        # The inserts are not the last statement, or a rejected record may
        # yet roll them back (write_all is all or nothing).
        begin(session)
    trait_values.remove(session, store_id, removed)
    # The writes of the whole batch: one statement on PostgreSQL, four on SQLite.
    changed = {targets[i] for i in written} - created
    if repo.insert_rows(
        session, new_profiles, traits, identifiers, touched=(store_id, changed, now)
    ):
        enforce_limits(session, store_id, schema, touched)
    return result


def _profile_row(store_id: str, profile_id: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "id": profile_id,
        "merged_into": None,
        "created_at": now,
        "updated_at": now,
    }


def _create_alone(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    keys: set[Key],
    now: dt.datetime,
) -> Outcome | tuple[dict[Key, set[str]], dict[Key, set[str]]] | None:
    """A request's one record, as a new profile in one statement that inserts
    it unless one of its identifiers is held (repo.insert_new): CREATED, or
    the holders it found (then the write goes on as usual, from them). Only
    where that statement commits alone (kit.db.in_autocommit: a first attempt
    whose identifiers are all unique and exact) and the profile needs nothing
    but inserts (no identifier limit to enforce); None elsewhere.

    What it inserts is what `_write` would for a record nobody holds:
    `plan_new`'s rows, as an import built ahead inserts them."""
    if len(records) != 1 or records[0].anchor or not 0 < len(keys) <= repo.FEW_KEYS:
        return None
    if not in_autocommit(session):
        return None
    new = plan_new(store_id, schema, records, now)
    if new.general:
        return None
    holders = repo.insert_new(
        session, store_id, sorted(keys), new.profiles, new.traits, new.identifiers
    )
    if not holders:
        return new.outcomes[0]  # CREATED
    return holders, holders  # all exact: no fuzzy idType takes this path


@dataclass
class NewProfiles:
    """A batch resolved as if no stored profile held any of its identifiers
    (`plan_new`): every group of records that share identifiers becomes one
    new profile. Whether that holds is for the writer to check (`keys`)."""

    profile_ids: list[str]  # per group
    keys: list[list[Key]]  # per group: its identifiers
    group_of: list[int]  # per record
    outcomes: list[Outcome]  # per record
    # Groups that must take the general path anyway: more identifiers of an
    # idType than its limit (trimming them needs more than inserts).
    general: set[str]
    profiles: list[dict[str, Any]]
    traits: list[dict[str, Any]]
    identifiers: list[dict[str, Any]]


def plan_new(
    store_id: str, schema: StoreSchema, records: Sequence[Record], now: dt.datetime
) -> NewProfiles:
    """What `write` would do with `records` if none of their identifiers were
    held: the same plan, outcomes and rows, from the same functions, with no
    database (an import's second process, ingest.prebuild)."""
    assert not any(r.anchor for r in records)
    groups = resolution.plan(
        [r.keys for r in records], [None] * len(records), {}, schema.configs, schema.rules
    )
    targets = [""] * len(records)
    group_of = [0] * len(records)
    profile_ids = []
    for n, group in enumerate(groups):
        profile_id = ids.new_id(ids.PROFILE)
        profile_ids.append(profile_id)
        for index in group.records:
            targets[index] = profile_id
            group_of[index] = n
    outcomes: list[Outcome | None] = [None] * len(records)
    _describe_outcomes(None, store_id, schema, records, groups, targets, {}, outcomes)
    done = [o for o in outcomes if o is not None]
    written = [i for i, o in enumerate(done) if o.status != UNCHANGED]
    # (A removal in a new profile removes nothing: the changes already lack it.)
    changes, _ = _trait_changes(schema, records, targets, written, now)
    identifiers, per_type = _identifier_rows(store_id, schema, records, targets, written, now)
    general = {p for (p, t), n in per_type.items() if n > schema.configs[t].limit}
    return NewProfiles(
        profile_ids,
        [[key for i in group.records for key in records[i].keys] for group in groups],
        group_of,
        done,
        general,
        [_profile_row(store_id, p, now) for p in profile_ids],
        trait_values.group_rows(store_id, changes),
        identifiers,
    )


def write_all(
    session: Session,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    *,
    alone: bool = False,
) -> list[str]:
    """All or nothing: each record's profile id, or Conflict (409) for the
    first record that was rejected (the caller's transaction rolls back)."""
    outcomes = write(session, store_id, schema, records, alone=alone)
    for outcome in outcomes:
        if outcome.status == REJECTED:
            raise Conflict(outcome.reason or "rejected")
    return [o.profile_id or "" for o in outcomes]


def _find_holders(
    session: Session, store_id: str, schema: StoreSchema, keys: set[Key]
) -> tuple[dict[Key, set[str]], dict[Key, set[str]]]:
    """Holders (fuzzy matches included) and exact holders of each key."""
    exact = repo.holders_exact(session, store_id, keys)
    if not schema.has_fuzzy():
        return exact, exact
    return _with_fuzzy(session, store_id, schema, keys, exact), exact


def _describe_outcomes(
    session: Session | None,
    store_id: str,
    schema: StoreSchema,
    records: Sequence[Record],
    groups: list[Group],
    targets: list[str],
    exact: dict[Key, set[str]],
    outcomes: list[Outcome | None],
) -> None:
    """Fill in the outcome of every record that is not rejected.

    A group's first record creates its profile or merges its profiles; every
    other record updates the profile unless all it says is already there (its
    trait values as stored, its identifiers held): then it is unchanged."""
    existing = [g.canonical for g in groups if g.canonical is not None and not g.merged]
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    if existing:
        assert session is not None  # only a plan with stored profiles reads them
        for row in trait_values.of(session, store_id, existing):
            if schema.is_live(row.trait_key, row.def_key):
                values[row.profile_id][row.trait_key] = row.value
    known: dict[str, set[Key]] = defaultdict(set)
    for key, profiles in exact.items():
        for profile in profiles:
            known[profile].add(key)
    for group in groups:
        if len(group.records) == 1 and group.canonical is None:
            # The common case of a bulk load: one record, a new profile.
            index = group.records[0]
            outcomes[index] = Outcome(CREATED, targets[index])
            continue
        for position, index in enumerate(group.records):
            record, target = records[index], targets[index]
            current, held = values[target], known[target]
            if position == 0 and group.merged:
                outcomes[index] = Outcome(MERGED, target, tuple(group.merged))
            elif position == 0 and group.canonical is None:
                outcomes[index] = Outcome(CREATED, target)
            elif all(
                current.get(w.key, _ABSENT) == w.value
                if w.value is not None
                else w.key not in current
                for w in record.writes
            ) and all(key in held or key[0] not in schema.configs for key in record.keys):
                outcomes[index] = Outcome(UNCHANGED, target)
            else:
                outcomes[index] = Outcome(UPDATED, target)
            for w in record.writes:
                if w.value is None:
                    current.pop(w.key, None)
                else:
                    current[w.key] = w.value
            held.update(record.keys)


_ABSENT = object()


def _unique_conflicts(
    holders: dict[Key, set[str]],
    groups: list[Group],
    records: Sequence[Record],
    schema: StoreSchema,
) -> dict[int, str]:
    """A unique idType that is not a matching rule cannot merge, so a value
    held by another profile is a conflict: the records that meet one, with why."""
    group_of = {i: g for g in groups for i in g.records}
    conflicts: dict[int, str] = {}
    for i, record in enumerate(records):
        for id_type, value in record.keys:
            config = schema.configs.get(id_type)
            if config is None or not config.unique or id_type in schema.rules:
                continue
            others = set(holders.get((id_type, value), ())) - set(group_of[i].profiles)
            if others:
                conflicts[i] = (
                    f"{id_type} '{value}' belongs to profile {min(others)}; {id_type} is unique "
                    "and not a matching rule, so the profiles cannot be merged"
                )
                break
    return conflicts


def merge(
    session: Session, store_id: str, schema: StoreSchema, group: Group, now: dt.datetime
) -> None:
    """Merge group.merged into group.canonical: traits (newest wins), identifiers,
    everything else that belongs to a profile; the merged ids become aliases."""
    canonical = group.canonical
    assert canonical is not None
    traits = trait_values.of(session, store_id, group.profiles)
    best: dict[str, trait_values.TraitValue] = {}
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
    winners: trait_values.Changes = {}
    for row in best.values():
        if row.profile_id != canonical:
            winners.setdefault((canonical, row.group_name), {})[row.name] = (
                row.value,
                row.updated_at,
                row.def_key,
            )
    for merged in group.merged:
        trait_values.remove_all(session, store_id, merged)
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
    if winners:  # the write path's insert, so its merge-on-conflict rule is the one
        repo.insert_rows(session, [], trait_values.group_rows(store_id, winners), [])
    enforce_limits(session, store_id, schema, {(canonical, t) for t in schema.configs})


def _trait_changes(
    schema: StoreSchema,
    records: Sequence[Record],
    targets: list[str],
    written: list[int],
    now: dt.datetime,
) -> tuple[trait_values.Changes, list[tuple[str, str, str]]]:
    """The values to write (later records win over earlier ones for the same
    profile and trait) and the (profile, group, trait) set to null."""
    changes: trait_values.Changes = {}
    removed: dict[tuple[str, str, str], None] = {}  # ordered, for a stable statement order
    def_keys = schema.def_keys
    for index in written:
        profile_id = targets[index]
        for w in records[index].writes:
            if w.value is None:
                entries = changes.get((profile_id, w.group))
                if entries is not None:
                    entries.pop(w.name, None)
                removed[(profile_id, w.group, w.name)] = None
                continue
            if removed:  # (a new profile's write, the common case, removes nothing)
                removed.pop((profile_id, w.group, w.name), None)
            entries = changes.get((profile_id, w.group))
            if entries is None:
                entries = changes[(profile_id, w.group)] = {}
            entries[w.name] = (w.value, now, def_keys[w.key])
    return {key: entries for key, entries in changes.items() if entries}, list(removed)


def identifier_row(
    store_id: str,
    profile_id: str,
    schema: StoreSchema,
    key: Key,
    now: dt.datetime,
    sort_key: str | None = None,
) -> dict[str, Any]:
    id_type, value = key
    config = schema.configs[id_type]
    prefix, suffix = repo.block_keys(config.fuzzy, value)
    return {
        "store_id": store_id,
        "profile_id": profile_id,
        "id_type": id_type,
        "value": value,
        "scope": repo.unique_scope(config.unique, profile_id),
        "sort_key": sort_key or ids.new_id(ids.ROW),
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
    written: list[int],
    now: dt.datetime,
    exact: dict[Key, set[str]] | None = None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """Identifier rows to add, and how many per (profile, idType); none for a
    value its profile held already (`exact`: the holders found)."""
    exact = exact or {}
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    per_type: dict[tuple[str, str], int] = defaultdict(int)
    # Sort keys order identifiers by creation: one fresh id for the batch plus
    # a counter sorts after every earlier key and keeps the batch's own order.
    base = ids.new_id(ids.ROW)
    for index in written:
        record, profile_id = records[index], targets[index]
        for key in record.keys:
            if (
                key[0] in schema.configs
                and (profile_id, *key) not in rows
                and profile_id not in exact.get(key, ())
            ):
                sort_key = f"{base}{len(rows):08d}"
                rows[(profile_id, *key)] = identifier_row(
                    store_id, profile_id, schema, key, now, sort_key
                )
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
