"""The lines of a run's report (an import, a sync): every error, and the first
warnings. Counting stays exact past the cap; only the lines kept are capped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from convmem.ingest.pipeline import Problem

# Warnings are all counted, but a report keeps the first ones only.
MAX_WARNING_LINES = 10_000


@dataclass
class ReportState:
    """How many lines (and warning lines) the report has so far; kept in the
    run's checkpoint so a resumed run numbers its lines on."""

    lines: int = 0
    warning_lines: int = 0

    def lines_for(self, problems: Iterable[Problem], **keys: Any) -> list[dict[str, Any]]:
        """Rows for the report table (with `keys` in each), advancing the state."""
        rows: list[dict[str, Any]] = []
        for p in problems:
            if p.warning:
                if self.warning_lines >= MAX_WARNING_LINES:
                    continue
                self.warning_lines += 1
            self.lines += 1
            rows.append(
                {
                    **keys,
                    "seq": self.lines,
                    "row": p.row,
                    "column": p.column[:255],
                    "code": p.code,
                    "message": p.message[:1024],
                    "value": p.value,
                    "warning": p.warning,
                }
            )
        return rows
