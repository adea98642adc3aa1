"""A run's report lines: every line numbered on, warnings capped, errors capped where asked."""

from __future__ import annotations

from convmem.ingest.pipeline import Problem
from convmem.ingest.report import MAX_WARNING_LINES, ReportState


def problems(count: int, *, warning: bool) -> list[Problem]:
    return [Problem(n, "c", "CODE", "m", "v", warning) for n in range(count)]


def test_errors_are_capped_only_where_asked() -> None:
    sync = ReportState(max_errors=3)
    rows = sync.lines_for(problems(5, warning=False) + problems(2, warning=True), sync_id="s")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert (sync.error_lines, sync.warning_lines, sync.lines) == (3, 2, 5)
    resumed = ReportState(sync.lines, sync.warning_lines, sync.error_lines, max_errors=3)
    assert resumed.lines_for(problems(1, warning=False)) == []
    imports = ReportState()
    assert len(imports.lines_for(problems(200, warning=False))) == 200


def test_warnings_are_capped() -> None:
    state = ReportState(warning_lines=MAX_WARNING_LINES - 1)
    assert len(state.lines_for(problems(3, warning=True))) == 1
