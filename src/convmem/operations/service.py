"""Creating and reading operations.

Cheap writes are applied inside the request, so their operation is recorded
already COMPLETED. Long work is enqueued as PENDING in the same transaction as
the change that needs it: a rolled-back request leaves no job behind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import MalformedOperationId, OperationNotFound
from convmem.operations import repository, status
from convmem.operations.models import Operation


def record_completed(
    session: Session,
    *,
    account_sid: str,
    store_id: str | None,
    kind: str,
    resource_id: str | None = None,
    result_path: str | None = None,
) -> Operation:
    now = utcnow()
    op = Operation(
        id=ids.new_id(ids.OPERATION),
        account_sid=account_sid,
        store_id=store_id,
        kind=kind,
        status=status.COMPLETED,
        payload={},
        result={"type": "RESOURCE_ID", "id": resource_id} if resource_id else None,
        result_path=result_path,
        attempts=0,
        max_attempts=0,
        run_after=now,
        created_at=now,
        started_at=now,
        completed_at=now,
    )
    repository.add(session, op)
    return op


def enqueue(
    session: Session,
    *,
    account_sid: str,
    store_id: str | None,
    kind: str,
    payload: dict[str, Any],
    max_attempts: int | None = None,
) -> Operation:
    """Queue background work. `max_attempts` None means the workers' setting."""
    now = utcnow()
    op = Operation(
        id=ids.new_id(ids.OPERATION),
        account_sid=account_sid,
        store_id=store_id,
        kind=kind,
        status=status.PENDING,
        payload=payload,
        attempts=0,
        max_attempts=max_attempts or 0,
        run_after=now,
        created_at=now,
    )
    repository.add(session, op)
    return op


def get(session: Session, *, account_sid: str, operation_id: str) -> Operation:
    ids.require(
        ids.OPERATION_ID,
        operation_id,
        field="operationId",
        prefix=ids.OPERATION,
        error=MalformedOperationId,
    )
    op = repository.get_for_account(session, account_sid=account_sid, operation_id=operation_id)
    if op is None:
        raise OperationNotFound(f"Operation {operation_id} not found")
    return op
