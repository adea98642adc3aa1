"""All SQL of operations and of the job queue they double as."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from convmem.kit.db import affected
from convmem.operations import status
from convmem.operations.models import Operation


def add(session: Session, op: Operation) -> None:
    session.add(op)
    session.flush()


def get_for_account(session: Session, *, account_sid: str, operation_id: str) -> Operation | None:
    op = session.get(Operation, operation_id)
    if op is None or op.account_sid != account_sid:
        return None
    return op


def get(session: Session, operation_id: str) -> Operation | None:
    return session.get(Operation, operation_id)


def _claimable(now: dt.datetime) -> Any:
    return or_(
        and_(Operation.status == status.PENDING, Operation.run_after <= now),
        and_(Operation.status == status.RUNNING, Operation.lease_expires_at < now),
    )


def any_due(session: Session, *, now: dt.datetime) -> bool:
    """A cheap read before claiming, so idle polls never take a write lock."""
    return session.scalar(select(Operation.id).where(_claimable(now)).limit(1)) is not None


def claim_next(
    session: Session, *, owner: str, now: dt.datetime, lease_until: dt.datetime, skip_locked: bool
) -> Operation | None:
    """Take the next due job (or one whose worker stopped heartbeating)."""
    query = select(Operation.id).where(_claimable(now)).order_by(Operation.run_after).limit(1)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    op_id = session.scalar(query)
    if op_id is None:
        return None
    # Compare-and-set: only one claimer can move the row while it is claimable.
    claimed = affected(
        session,
        update(Operation)
        .where(Operation.id == op_id, _claimable(now))
        .values(
            status=status.RUNNING,
            lease_owner=owner,
            lease_expires_at=lease_until,
            attempts=Operation.attempts + 1,
            started_at=now,
        )
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        return None
    return session.get(Operation, op_id, populate_existing=True)


def guarded_update(session: Session, *, op_id: str, owner: str, **values: Any) -> bool:
    """Update a running job only while `owner` still holds its lease."""
    changed = affected(
        session,
        update(Operation)
        .where(
            Operation.id == op_id,
            Operation.lease_owner == owner,
            Operation.status == status.RUNNING,
        )
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    return changed == 1
