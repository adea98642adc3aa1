from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from convmem.kit.schemas import timestamp
from convmem.operations import status
from convmem.operations.models import Operation


class OperationOut(BaseModel):
    operationId: str
    status: str
    createdAt: str
    completedAt: str | None = None
    statusUrl: str
    result: dict[str, Any] | None = None
    resultUrl: str | None = None
    error: dict[str, Any] | None = None


def operation_status(op: Operation, *, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": op.id,
        "status": op.status,
        "createdAt": timestamp(op.created_at),
        "statusUrl": f"{base_url}/v1/ControlPlane/Operations/{op.id}",
    }
    if op.completed_at is not None and op.status in status.TERMINAL:
        body["completedAt"] = timestamp(op.completed_at)
    if op.status == status.COMPLETED:
        if op.result:
            body["result"] = op.result
        if op.result_path:
            body["resultUrl"] = base_url + op.result_path
    if op.status == status.FAILED and op.error:
        body["error"] = op.error
    return body
