"""The lines of a run's report (an import, a sync): every error, and the first
warnings. Counting stays exact past the cap; only the lines kept are capped."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Integer, String, Table, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from convmem.ingest.pipeline import Problem
from convmem.kit.db import core


class ReportLineColumns:
    """The columns every run's report table has after its keys (a mixin for
    the models of import and sync reports; `seq` numbers a run's lines)."""

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(1024))
    value: Mapped[str] = mapped_column(Text)
    warning: Mapped[bool] = mapped_column(Boolean)


# Warnings are all counted, but a report keeps the first ones only.
MAX_WARNING_LINES = 10_000


@dataclass
class ReportState:
    """How many lines (warning and error lines) the report has so far; kept
    in the run's checkpoint so a resumed run numbers its lines on. Errors are
    capped only where `max_errors` is set (a sync; an import fails first)."""

    lines: int = 0
    warning_lines: int = 0
    error_lines: int = 0
    max_errors: int | None = None

    def lines_for(self, problems: Iterable[Problem], **keys: Any) -> list[dict[str, Any]]:
        """Rows for the report table (with `keys` in each), advancing the state."""
        rows: list[dict[str, Any]] = []
        for p in problems:
            if p.warning:
                if self.warning_lines >= MAX_WARNING_LINES:
                    continue
                self.warning_lines += 1
            else:
                if self.max_errors is not None and self.error_lines >= self.max_errors:
                    continue
                self.error_lines += 1
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


# The columns of a downloaded report.
REPORT_COLUMNS = ("row", "column", "code", "message", "value", "severity")


def read_lines(session: Session, table: Table, *, batch: int = 1000, **keys: str) -> Iterator[Any]:
    """A run's report lines in order, read `batch` at a time (keyset on `seq`);
    `keys` select the run (store_id=..., import_id=...)."""
    c = table.c
    after = -1
    while True:
        rows = (
            core(session)
            .execute(
                select(c.seq, c.row, c.column, c.code, c.message, c.value, c.warning)
                .where(*(c[name] == value for name, value in keys.items()), c.seq > after)
                .order_by(c.seq)
                .limit(batch)
            )
            .all()
        )
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].seq


def render_csv(lines: Iterable[Any]) -> bytes:
    """The report as CSV: one line per failed row or warning."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for line in lines:
        severity = "warning" if line.warning else "error"
        writer.writerow((line.row, line.column, line.code, line.message, line.value, severity))
    return out.getvalue().encode()
