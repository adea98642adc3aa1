"""All SQL of profiles, their traits, identifiers and merges."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterable, Sequence
from functools import cache, lru_cache
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import (
    JSON,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.orm import Session

from convmem.identity.normalize import blocking_keys
from convmem.kit.db import Base, UTCDateTime, affected, core, is_postgres
from convmem.kit.prepared import (
    Prepared,
    driver_executemany,
    driver_rows,
    sqlite_in_chunks,
    take_guard,
)
from convmem.profiles import trait_values
from convmem.profiles.models import Profile, ProfileIdentifier, ProfileMerge, ProfileTraitGroup

Key = tuple[str, str]


def lock_keys(session: Session, store_id: str, keys: Iterable[Key]) -> None:
    """Transaction-scoped advisory locks on identifier values (PostgreSQL).

    Taken in sorted order so two writers never wait on each other in a cycle.
    SQLite needs none: its write transactions (BEGIN IMMEDIATE) run one at a time.
    """
    if not is_postgres(session):
        return
    hashes = sorted(
        {
            int.from_bytes(
                hashlib.blake2b(f"{store_id}\x1f{t}\x1f{v}".encode(), digest_size=8).digest(),
                "big",
                signed=True,
            )
            for t, v in keys
        }
    )
    if hashes:
        # One round trip; unnest keeps the array's (sorted) order.
        _ADVISORY_LOCKS.all(session, keys=hashes)


_ADVISORY_LOCKS = Prepared(
    text(
        "SELECT pg_advisory_xact_lock(k) "
        "FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY n"
    )
)


_GET = Prepared(
    select(Profile.id, Profile.merged_into, Profile.created_at).where(
        Profile.store_id == bindparam("store_id"), Profile.id == bindparam("profile_id")
    )
)


def lock_profiles(session: Session, store_id: str, ids: Sequence[str]) -> dict[str, str | None]:
    """Row-lock profiles and their aliases, in id order, and return each
    requested profile's current merged_into (absent when it does not exist).

    Aliases are locked too because a merge re-points them: taking them here,
    in the same order as every other writer, keeps merges deadlock-free.
    SQLite needs no row locks (one writer at a time)."""
    if not ids:
        return {}
    unique = sorted(set(ids))
    if not is_postgres(session):
        if len(unique) == 1:
            rows = _GET.all(session, store_id=store_id, profile_id=unique[0])
            return {row.id: row.merged_into for row in rows}
        query = select(Profile.id, Profile.merged_into).where(
            Profile.store_id == store_id, Profile.id.in_(unique)
        )
        return {pid: merged for pid, merged in core(session).execute(query)}
    rows = _LOCK_WITH_ALIASES.all(session, store_id=store_id, ids=unique)
    wanted = set(unique)
    return {pid: merged for pid, merged in rows if pid in wanted}


_LOCK_WITH_ALIASES = Prepared(
    text(
        "SELECT id, merged_into FROM profiles "
        "WHERE store_id = :store_id AND (id = ANY(:ids) OR merged_into = ANY(:ids)) "
        "ORDER BY id FOR UPDATE"
    )
)


def get(session: Session, store_id: str, profile_id: str) -> Any:
    """(id, merged_into, created_at) of a profile (hot path: no ORM object)."""
    return _GET.first(session, store_id=store_id, profile_id=profile_id)


_HOLDERS_ONE = Prepared(
    select(ProfileIdentifier.profile_id).where(
        ProfileIdentifier.store_id == bindparam("store_id"),
        ProfileIdentifier.id_type == bindparam("id_type"),
        ProfileIdentifier.value == bindparam("value"),
    )
)


# A request's few identifiers (a create with an email and a phone) in one
# prebuilt statement: one index search per key, one round trip, and the store
# check can ride on it. Bulk batches take the per-idType IN below.
FEW_KEYS = 8


@cache
def _holders_few_statement(count: int) -> Prepared:
    # UNION ALL, not OR: each arm is an index search whatever the planner's
    # statistics (SQLite without ANALYZE searches an OR by store_id alone).
    # Selected from as a subquery, so the store check can ride on it.
    row = ProfileIdentifier
    arms = [
        select(row.id_type, row.value, row.profile_id).where(
            row.store_id == bindparam("store_id"),
            row.id_type == bindparam(f"t{n}"),
            row.value == bindparam(f"v{n}"),
        )
        for n in range(count)
    ]
    found = union_all(*arms).subquery("held")
    return Prepared(select(found.c.id_type, found.c.value, found.c.profile_id))


def holders_exact(session: Session, store_id: str, keys: Iterable[Key]) -> dict[Key, set[str]]:
    unique = set(keys)
    if len(unique) <= FEW_KEYS:
        # Sorted: the prebuilt statements take the values in a stable order.
        return _holders_few(session, store_id, sorted(unique))
    # One query per idType (and per 500 values on SQLite): an index search on
    # (store_id, id_type, value) for each value. (A row-value IN over
    # (id_type, value) pairs makes SQLite read the store's whole index.) Run
    # on the driver: a batch's thousands of values skip SQLAlchemy's
    # per-value parameter and per-row result processing.
    by_type: dict[str, list[str]] = {}
    for id_type, value in unique:
        by_type.setdefault(id_type, []).append(value)
    postgres = is_postgres(session)
    found: dict[Key, set[str]] = {}
    for id_type, values in by_type.items():
        for sql, args in _holders_queries(postgres, store_id, id_type, values):
            for value, profile_id in driver_rows(session, sql, args):
                found.setdefault((id_type, value), set()).add(profile_id)
    return found


def _holders_few(session: Session, store_id: str, keys: list[Key]) -> dict[Key, set[str]]:
    if not keys:
        return {}
    if len(keys) == 1:  # the common case (lookups, single creates)
        (id_type, value) = keys[0]
        holders = set(
            _HOLDERS_ONE.scalars(session, store_id=store_id, id_type=id_type, value=value)
        )
        return {keys[0]: holders} if holders else {}
    params = {f"t{n}": t for n, (t, _) in enumerate(keys)}
    params |= {f"v{n}": v for n, (_, v) in enumerate(keys)}
    found: dict[Key, set[str]] = {}
    for id_type, value, profile_id in _holders_few_statement(len(keys)).all(
        session, store_id=store_id, **params
    ):
        found.setdefault((id_type, value), set()).add(profile_id)
    return found


_HOLDERS_SQL = (
    "SELECT value, profile_id FROM profile_identifiers "
    "WHERE store_id = {p} AND id_type = {p} AND value "
)
_HOLDERS_ANY = _HOLDERS_SQL.format(p="%s") + "= ANY(%s)"


_HOLDERS_IN = _HOLDERS_SQL.format(p="?") + "IN ({})"


def _holders_queries(
    postgres: bool, store_id: str, id_type: str, values: list[str]
) -> list[tuple[str, tuple[Any, ...]]]:
    """(SQL, parameters) of the look-ups of one idType's values."""
    if postgres:
        return [(_HOLDERS_ANY, (store_id, id_type, values))]
    return [
        (_HOLDERS_IN.format(marks), (store_id, id_type, *chunk))
        for marks, chunk in sqlite_in_chunks(values)
    ]


def fuzzy_candidates(
    session: Session, store_id: str, id_type: str, prefix: str, suffix: str, *, limit: int
) -> list[tuple[str, str]]:
    """(value, profile_id) pairs sharing a blocking key with the probe."""
    rows = core(session).execute(
        select(ProfileIdentifier.value, ProfileIdentifier.profile_id)
        .where(
            ProfileIdentifier.store_id == store_id,
            ProfileIdentifier.id_type == id_type,
            ProfileIdentifier.fuzzy.is_(True),
            or_(ProfileIdentifier.block_prefix == prefix, ProfileIdentifier.block_suffix == suffix),
        )
        .limit(limit)
    )
    return [(value, pid) for value, pid in rows]


_TOUCH_SQLITE = "UPDATE profiles SET updated_at = ? WHERE store_id = ? AND id = ?"


def _touch_sqlite(session: Session, store_id: str, ids: Collection[str], now: Any) -> None:
    """SQLite: set `updated_at` of stored profiles (on the driver, as inserts go)."""
    if ids:
        stamp = _sqlite_datetime(now)
        driver_executemany(session, _TOUCH_SQLITE, [(stamp, store_id, pid) for pid in ids])


def unique_scope(unique: bool, profile_id: str) -> str:
    """An identifier row's `scope`: "" claims its value for the whole store
    (enforceUnique), the holder's id shares it with any other profile."""
    return "" if unique else profile_id


def block_keys(fuzzy: bool, value: str) -> tuple[str, str]:
    """An identifier row's (block_prefix, block_suffix): only fuzzy idTypes'
    rows are in the blocking indexes (partial on `fuzzy`), so only theirs
    are computed; the reindex job computes them when an idType turns fuzzy."""
    return blocking_keys(value) if fuzzy else ("", "")


# What an identifier insert conflicts on: a value the profile already has stays.
_IDENTIFIER_KEY = ("store_id", "profile_id", "id_type", "value")
_IDENTIFIER_CONFLICT_SQL = f"ON CONFLICT ({', '.join(_IDENTIFIER_KEY)}) DO NOTHING"


_PROFILE_WITH_TRAITS = Prepared(
    select(
        Profile.id,
        Profile.merged_into,
        Profile.created_at,
        ProfileTraitGroup.group_name,
        ProfileTraitGroup.traits,
    )
    .select_from(Profile)
    .outerjoin(
        ProfileTraitGroup,
        and_(
            ProfileTraitGroup.store_id == Profile.store_id,
            ProfileTraitGroup.profile_id == Profile.id,
        ),
    )
    .where(Profile.store_id == bindparam("store_id"), Profile.id == bindparam("profile_id"))
    .order_by(ProfileTraitGroup.group_name)
)


class _GroupRow(NamedTuple):
    profile_id: str
    group_name: str
    traits: dict[str, Any]


def profile_with_traits(
    session: Session, store_id: str, profile_id: str
) -> tuple[Any, list[trait_values.TraitValue]]:
    """A profile (as `get` gives it, None when absent) and its trait values, in
    one round trip: the hot path of a profile fetch."""
    rows = _PROFILE_WITH_TRAITS.all(session, store_id=store_id, profile_id=profile_id)
    if not rows:
        return None, []
    groups = [_GroupRow(r.id, r.group_name, r.traits) for r in rows if r.group_name is not None]
    return rows[0], trait_values.expand(groups)


def identifiers_of(
    session: Session, store_id: str, profile_ids: Iterable[str], id_type: str | None = None
) -> list[Row[Any]]:
    query = select(*ProfileIdentifier.__table__.c).where(
        ProfileIdentifier.store_id == store_id,
        ProfileIdentifier.profile_id.in_(list(profile_ids)),
    )
    if id_type is not None:
        query = query.where(ProfileIdentifier.id_type == id_type)
    return list(core(session).execute(query.order_by(ProfileIdentifier.sort_key)))


@cache
def _insert_identifiers(postgres: bool) -> Any:
    insert_ = postgresql.insert if postgres else sqlite.insert
    return insert_(ProfileIdentifier.__table__).on_conflict_do_nothing(  # type: ignore[arg-type]
        index_elements=list(_IDENTIFIER_KEY)
    )


def insert_identifiers(session: Session, rows: list[dict[str, Any]]) -> int:
    """Add identifier values; a value the profile already has is left as is.

    Returns how many were new."""
    if not rows:
        return 0
    result = core(session).execute(_insert_identifiers(is_postgres(session)), rows)
    return int(cast(CursorResult[Any], result).rowcount)


def delete_identifiers(
    session: Session, store_id: str, profile_id: str, id_type: str, values: Iterable[str] | None
) -> int:
    query = delete(ProfileIdentifier).where(
        ProfileIdentifier.store_id == store_id,
        ProfileIdentifier.profile_id == profile_id,
        ProfileIdentifier.id_type == id_type,
    )
    if values is not None:
        query = query.where(ProfileIdentifier.value.in_(list(values)))
    return affected(session, query)


def move_identifiers(session: Session, store_id: str, source: str, target: str) -> None:
    """Give `target` every identifier of `source` it does not already have."""
    rows = identifiers_of(session, store_id, [source])
    session.execute(
        delete(ProfileIdentifier).where(
            ProfileIdentifier.store_id == store_id, ProfileIdentifier.profile_id == source
        )
    )
    insert_identifiers(
        session,
        [
            {
                "store_id": store_id,
                "profile_id": target,
                "id_type": r.id_type,
                "value": r.value,
                # A value held store-wide stays so; one held per profile moves.
                "scope": r.scope and target,
                "sort_key": r.sort_key,
                "fuzzy": r.fuzzy,
                "block_prefix": r.block_prefix,
                "block_suffix": r.block_suffix,
                "created_at": r.created_at,
            }
            for r in rows
        ],
    )


def profile_scoped_tables() -> list[Table]:
    """Other tables holding rows of a profile (observations, summaries, ...):
    a merge re-points them at the canonical profile."""
    own = {"profiles", "profile_trait_groups", "profile_identifiers", "profile_merges"}
    return [
        t
        for t in Base.metadata.sorted_tables
        if "profile_id" in t.c and "store_id" in t.c and t.name not in own
    ]


def repoint(session: Session, store_id: str, source: str, target: str) -> None:
    for table in profile_scoped_tables():
        session.execute(
            update(table)
            .where(table.c.store_id == store_id, table.c.profile_id == source)
            .values(profile_id=target)
        )


def mark_merged(session: Session, store_id: str, source: str, target: str, now: Any) -> None:
    # Aliases of the merged profile now point straight at the canonical one.
    session.execute(
        update(Profile)
        .where(Profile.store_id == store_id, Profile.merged_into == source)
        .values(merged_into=target, updated_at=now)
    )
    session.execute(
        update(Profile)
        .where(Profile.store_id == store_id, Profile.id == source)
        .values(merged_into=target, updated_at=now)
    )


def record_merge(session: Session, row: dict[str, Any]) -> None:
    session.execute(insert(ProfileMerge), [row])


def list_query(store_id: str) -> Select[Any]:
    return select(Profile.id).where(Profile.store_id == store_id, Profile.merged_into.is_(None))


def delete_profile(session: Session, store_id: str, profile_id: str) -> None:
    for model in (ProfileTraitGroup, ProfileIdentifier):
        session.execute(
            delete(model).where(model.store_id == store_id, model.profile_id == profile_id)
        )
    for table in profile_scoped_tables():
        session.execute(
            delete(table).where(table.c.store_id == store_id, table.c.profile_id == profile_id)
        )
    # Its aliases go too: a deleted profile is gone under every id it had.
    # (Two statements: an OR of the two columns cannot use either index.)
    session.execute(
        delete(Profile).where(Profile.store_id == store_id, Profile.merged_into == profile_id)
    )
    session.execute(delete(Profile).where(Profile.store_id == store_id, Profile.id == profile_id))


def refresh_statistics(session: Session) -> None:
    """ANALYZE the profile tables (PostgreSQL). A bulk load into a store that
    was empty outgrows the planner's statistics long before autovacuum looks:
    until then it may filter a store's whole identifier index instead of
    searching it (seen: 0.6 s per batch look-up at 200k profiles)."""
    if is_postgres(session):
        session.execute(text("ANALYZE profiles, profile_identifiers, profile_trait_groups"))


def shared_value(session: Session, store_id: str, id_type: str) -> str | None:
    """A value of `id_type` held by more than one profile, if any (one pass
    over the covering index, in value order)."""
    return session.scalar(
        select(ProfileIdentifier.value)
        .where(ProfileIdentifier.store_id == store_id, ProfileIdentifier.id_type == id_type)
        .group_by(ProfileIdentifier.value)
        .having(func.count() > 1)
        .limit(1)
    )


def identifier_window(
    session: Session, store_id: str, id_type: str, after: tuple[str, str] | None, limit: int
) -> list[Row[Any]]:
    """The next `limit` identifiers of an idType in (value, profile_id) order."""
    query = select(
        ProfileIdentifier.profile_id,
        ProfileIdentifier.value,
        ProfileIdentifier.fuzzy,
        ProfileIdentifier.scope,
    ).where(ProfileIdentifier.store_id == store_id, ProfileIdentifier.id_type == id_type)
    if after is not None:
        query = query.where(
            tuple_(ProfileIdentifier.value, ProfileIdentifier.profile_id) > tuple_(*after)
        )
    order = (ProfileIdentifier.value, ProfileIdentifier.profile_id)
    return list(core(session).execute(query.order_by(*order).limit(limit)))


_SET_FLAGS = (
    update(ProfileIdentifier.__table__)  # type: ignore[arg-type]
    .where(
        ProfileIdentifier.store_id == bindparam("sid"),
        ProfileIdentifier.profile_id == bindparam("pid"),
        ProfileIdentifier.id_type == bindparam("tid"),
        ProfileIdentifier.value == bindparam("val"),
    )
    .values(
        fuzzy=bindparam("fuzzy"),
        scope=bindparam("scope"),
        block_prefix=bindparam("prefix"),
        block_suffix=bindparam("suffix"),
    )
)


def set_identifier_flags(
    session: Session,
    store_id: str,
    id_type: str,
    rows: Sequence[Row[Any]],
    *,
    fuzzy: bool,
    unique: bool,
) -> None:
    params = [
        {
            "sid": store_id,
            "pid": row.profile_id,
            "tid": id_type,
            "val": row.value,
            "fuzzy": fuzzy,
            "scope": unique_scope(unique, row.profile_id),
            "prefix": prefix,
            "suffix": suffix,
        }
        for row in rows
        for prefix, suffix in [block_keys(fuzzy, row.value)]
    ]
    if params:
        core(session).execute(_SET_FLAGS, params)


# PostgreSQL: the inserts of a write in one round trip, as data-modifying CTEs
# reading their rows from JSON parameters. ON CONFLICT keeps the semantics of
# the separate statements (traits overwrite, known identifiers stay). Built
# from the tables' columns, so a new column cannot break PostgreSQL alone.
def _from_json(table: Any, param: str) -> str:
    """`INSERT INTO table (cols) SELECT cols FROM jsonb_to_recordset(:param)`."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    columns = [c.name for c in table.columns]
    types = ", ".join(
        f"{c.name} {'jsonb' if isinstance(c.type, JSON) else c.type.compile(dialect)}"
        for c in table.columns
    )
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {names} "
        f"FROM jsonb_to_recordset(CAST(:{param} AS jsonb)) AS x({types})"
    )


def _insert_rows_pg() -> Any:
    return text(
        f"""
WITH
p AS ({_from_json(Profile.__table__, "profiles")}),
t AS (
  {_from_json(ProfileTraitGroup.__table__, "traits")}
  {trait_values.POSTGRES_CONFLICT}
),
i AS (
  {_from_json(ProfileIdentifier.__table__, "identifiers")}
  {_IDENTIFIER_CONFLICT_SQL}
  RETURNING 1
),
u AS (
  UPDATE profiles SET updated_at = CAST(:now AS timestamptz)
  WHERE store_id = :store_id AND id = ANY(CAST(:touched AS text[]))
)
SELECT count(*) FROM i
"""
    )


_INSERT_ROWS_PG = Prepared(_insert_rows_pg())


_GUARD_MARK = "__guard__"


@cache
def _insert_new_sql(keys: int, expect: int) -> str:
    """`_insert_rows_pg` for one new profile, done only when none of its
    `keys` is held (and, with a guard of `expect` columns, only while the
    guard's row is as expected): returns the guard's row (if any) joined with
    the keys' holders. The look-up is `_holders_few_statement`'s, one index
    search per key."""
    held = " UNION ALL ".join(
        "SELECT id_type, value, profile_id FROM profile_identifiers "
        f"WHERE store_id = :store_id AND id_type = :t{n} AND value = :v{n}"
        for n in range(keys)
    )
    go = "NOT EXISTS (SELECT 1 FROM held)"
    answer = "SELECT held.*, 1 AS row_marker FROM held"
    ctes = f"held AS ({held})"
    if expect:
        values = ", ".join(f":guard_expect_{n}" for n in range(expect))
        go += f" AND EXISTS (SELECT 1 FROM guard WHERE ROW(guard.*) = ROW({values}))"
        answer = f"SELECT guard.*, h.* FROM guard LEFT JOIN ({answer}) AS h ON true"
        ctes = f"guard AS ({_GUARD_MARK}), {ctes}"
    sql = f"""
WITH {ctes},
p AS ({_from_json(Profile.__table__, "profiles")} WHERE {go}),
t AS ({_from_json(ProfileTraitGroup.__table__, "traits")} WHERE {go}),
i AS ({_from_json(ProfileIdentifier.__table__, "identifiers")} WHERE {go})
{answer}
"""
    return str(text(sql).compile(dialect=psycopg_dialect()))  # type: ignore[no-untyped-call]


def insert_new(
    session: Session,
    store_id: str,
    keys: Sequence[Key],
    profiles: list[dict[str, Any]],
    traits: list[dict[str, Any]],
    identifiers: list[dict[str, Any]],
) -> dict[Key, set[str]]:
    """PostgreSQL: insert a new profile's rows in one statement unless a
    profile holds one of `keys` (1 to FEW_KEYS): the holders, empty when
    the rows went in. It carries the session's pending guard: when the
    guard's check fails, nothing is inserted and `verify` raises."""
    connection = session.connection()
    guard = take_guard(session)
    expect = guard.expect if guard is not None and guard.expect is not None else ()
    sql = _insert_new_sql(len(keys), len(expect))
    params: dict[str, Any] = {
        "store_id": store_id,
        "profiles": _json_rows(profiles),
        "traits": _json_rows(traits),
        "identifiers": _json_rows(identifiers),
    }
    for n, (id_type, value) in enumerate(keys):
        params[f"t{n}"], params[f"v{n}"] = id_type, value
    if guard is not None:
        check_sql, check_params = guard.embedded(connection)
        sql = sql.replace(_GUARD_MARK, check_sql)
        params |= check_params | {f"guard_expect_{n}": v for n, v in enumerate(expect)}
    rows = driver_rows(session, sql, params)
    if guard is not None:
        guard.verify(tuple(rows[0][: len(expect)]) if rows else None)
        rows = [row[len(expect) :] for row in rows]
    holders: dict[Key, set[str]] = {}
    for id_type, value, profile_id, marker in rows:
        if marker is not None:
            holders.setdefault((id_type, value), set()).add(profile_id)
    return holders


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()


def insert_rows(
    session: Session,
    profiles: list[dict[str, Any]],
    traits: list[dict[str, Any]],
    identifiers: list[dict[str, Any]],
    *,
    touched: tuple[str, Collection[str], dt.datetime] | None = None,
) -> int:
    """Insert new profiles, merge trait values in (`trait_values.group_rows`),
    add identifiers, and set `updated_at` of `touched` (store_id, stored
    profiles a write changed, now); returns how many identifiers were new.
    One statement on PostgreSQL (none when there is nothing to write)."""
    store_id, ids, now = touched or ("", (), None)
    if is_postgres(session):
        if not (profiles or traits or identifiers or ids):
            return 0
        params = {
            "profiles": _json_rows(profiles),
            "traits": _json_rows(traits),
            "identifiers": _json_rows(identifiers),
            "store_id": store_id,
            "touched": list(ids),
            "now": now,
        }
        return int(_INSERT_ROWS_PG.all(session, **params)[0][0])
    added = insert_built(session, built_rows(profiles, traits, identifiers))
    _touch_sqlite(session, store_id, ids, now)
    return added


# SQLite: batches go to the driver's executemany with values already in their
# stored form. SQLAlchemy's per-row parameter processing costs several times
# the insert itself for the thousands of rows of an import batch.
def _sqlite_value(column: Any) -> Any:
    if isinstance(column.type, UTCDateTime):
        return _sqlite_datetime
    if isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON):
        return lambda v: None if v is None else orjson.dumps(v).decode()
    return None


_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@lru_cache(maxsize=256)  # a batch's rows share one timestamp
def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime(_SQLITE_DATETIME)


@cache
def _sqlite_plan(table: Any, conflict: str) -> tuple[str, list[str], list[Any]]:
    names = [c.name for c in table.columns]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) {conflict}"
    )
    return sql, names, [_sqlite_value(c) for c in table.columns]


def _sqlite_tuples(table: Any, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """`rows` as the driver takes them for `table`, values in their stored form."""
    _, names, converters = _sqlite_plan(table, "")
    # Column by column (list comprehensions), then zipped into row tuples.
    columns = [
        [row[name] for row in rows] if conv is None else [conv(row[name]) for row in rows]
        for name, conv in zip(names, converters, strict=True)
    ]
    return list(zip(*columns, strict=True))


# Built rows (SQLite): `insert_rows`'s rows as driver tuples, which an import
# also makes away from the writer (ingest.prebuild) and inserts as they are.
# The profile id is the second column of each of the three tables.
BuiltRows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def built_rows(
    profiles: list[dict[str, Any]], traits: list[dict[str, Any]], identifiers: list[dict[str, Any]]
) -> BuiltRows:
    """`insert_rows`'s rows, as `insert_built` takes them."""
    return (
        _sqlite_tuples(Profile.__table__, profiles),
        _sqlite_tuples(ProfileTraitGroup.__table__, traits),
        _sqlite_tuples(ProfileIdentifier.__table__, identifiers),
    )


def insert_built(session: Session, rows: BuiltRows, skip: Collection[str] = ()) -> int:
    """SQLite: insert built rows, but those of the profiles in `skip`; returns
    how many identifiers were new."""
    profiles, traits, identifiers = (
        [row for row in values if row[1] not in skip] if skip else values for values in rows
    )
    _sqlite_insert(session, Profile.__table__, "", profiles)
    _sqlite_insert(session, ProfileTraitGroup.__table__, trait_values.SQLITE_CONFLICT, traits)
    return _sqlite_insert(
        session, ProfileIdentifier.__table__, _IDENTIFIER_CONFLICT_SQL, identifiers
    )


def _sqlite_insert(session: Session, table: Any, conflict: str, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    return driver_executemany(session, _sqlite_plan(table, conflict)[0], rows)
