"""The identity invariant, read straight from the database."""

from __future__ import annotations

from sqlalchemy import text

from convmem.kit.db import Database


def identity_violations(db: Database, store_id: str) -> list[str]:
    """What breaks "each identifier lives on exactly one canonical profile"."""
    problems: list[str] = []
    with db.transaction(write=False) as session:
        shared = session.execute(
            text(
                "SELECT id_type, value, COUNT(DISTINCT profile_id) FROM profile_identifiers "
                "WHERE store_id = :s GROUP BY id_type, value HAVING COUNT(DISTINCT profile_id) > 1"
            ),
            {"s": store_id},
        ).all()
        problems += [f"{t} {v!r} is held by {n} profiles" for t, v, n in shared]
        stranded = session.execute(
            text(
                "SELECT i.id_type, i.value, i.profile_id FROM profile_identifiers i "
                "LEFT JOIN profiles p ON p.store_id = i.store_id AND p.id = i.profile_id "
                "WHERE i.store_id = :s AND (p.id IS NULL OR p.merged_into IS NOT NULL)"
            ),
            {"s": store_id},
        ).all()
        problems += [f"{t} {v!r} sits on non-canonical {p}" for t, v, p in stranded]
        chains = session.execute(
            text(
                "SELECT a.id FROM profiles a JOIN profiles b "
                "ON b.store_id = a.store_id AND b.id = a.merged_into "
                "WHERE a.store_id = :s AND b.merged_into IS NOT NULL"
            ),
            {"s": store_id},
        ).all()
        problems += [f"alias {a} points at another alias" for (a,) in chains]
    return problems
