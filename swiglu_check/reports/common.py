"""Helpers shared by the text renderers: grouping, a kind's columns, the verdict line."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from ..kinds import Column, get_kind
from ..results import SKIP, VERDICTS, CaseResult, Report


def columns_for(kind: str) -> list[Column]:
    """The table columns of a kind; none for a kind this version does not know
    (a report read from a newer tool's JSON still renders, with verdicts and ids)."""
    try:
        return list(get_kind(kind).columns)
    except (InputError, ImportError, AttributeError):
        return []


def group_by_backend(report: Report) -> dict[tuple[str, str], list[CaseResult]]:
    """Results per (backend, kind), in the order they first appear."""
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for result in report.results:
        groups.setdefault((result.backend, result.kind), []).append(result)
    return groups


def ran_and_passed(report: Report) -> bool:
    """The CLI's success rule: every case passed and at least one was not skipped."""
    return report.passed and any(r.verdict != SKIP for r in report.results)


def verdict_counts_text(report: Report) -> str:
    """`9 PASS, 2 FAIL, 1 ERROR` (only verdicts that occur, in the fixed verdict order)."""
    counts = report.counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))


def verdict_summary(report: Report) -> str:
    """One line: did the run pass, how many cases, and where it ran."""
    total = len(report.results)
    counts = verdict_counts_text(report) or "no cases"
    if not total or all(r.verdict == SKIP for r in report.results):
        head = f"no case ran ({counts})"
    elif report.passed:
        head = f"every case that ran passed ({counts})"
    else:
        head = f"{len(report.failures())} of {total} cases did not pass ({counts})"
    device = report.environment.get("device_name") or report.environment.get("device")
    return f"{head} on {device}" if device else head


def column_line(result: CaseResult, columns: list[Column]) -> str:
    """The kind's table row as `header value` pairs, for text that is read, not parsed."""
    return ", ".join(f"{column.header} {cell(column, result)}" for column in columns)


def cell(column: Column, result: CaseResult) -> str:
    """One column's text for one result; '?' when the formatter cannot handle the
    result (a column must never stop a report from rendering)."""
    try:
        return column.render(result)
    except Exception:
        return "?"


def exact_text(value: Any) -> str:
    """A value as text that reads back exactly: floats by repr, containers as JSON,
    booleans as true/false, None as the empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):  # repr of a float is its shortest exact text
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)

