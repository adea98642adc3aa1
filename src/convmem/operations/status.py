from __future__ import annotations

from typing import Final

PENDING: Final = "PENDING"
RUNNING: Final = "RUNNING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"

TERMINAL: Final = frozenset({COMPLETED, FAILED, CANCELLED})
