"""Markdown for `$GITHUB_STEP_SUMMARY` (GitHub-flavoured: pipe tables, `<details>`).

Order: a one-line verdict, the cases that did not pass with their reasons, skip
reasons and warnings, one table per backend (the kind's own columns), then the environment. Backends with many cases
show their passing rows folded in `<details>`; when the text would pass GitHub's
1 MiB step-summary limit, the passing rows are left out (they stay in JSON/CSV/JUnit).
"""

from __future__ import annotations

import json
import re

from ..results import NOT_PASSING, SKIP, CaseResult, Report
from .common import cell, columns_for, group_by_backend, ran_and_passed, verdict_summary

COLLAPSE_PASSING_AFTER = 20  # a backend with more rows than this folds its passing rows
SUMMARY_LIMIT_BYTES = 1_000_000  # GitHub refuses step summaries over 1 MiB

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def escape(text: object) -> str:
    """Text safe in a table cell or list item: HTML and Markdown specials escaped,
    `|` as `\\|` (GFM's table escape), line breaks as `<br>`."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def code(text: str) -> str:
    """An inline code span for a case id; inside a table `|` still needs `\\|`.
    Text holding a backtick falls back to escaped plain text."""
    if "`" in text or "\n" in text:
        return escape(text)
    return f"`{text.replace('|', chr(92) + '|')}`"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers: list[str], rows: list[list[str]], right: list[bool]) -> list[str]:
    align = ["---:" if r else ":---" for r in right]
    return [_row([escape(h) for h in headers]), _row(align), *(_row(r) for r in rows)]


def _verdict_cell(result: CaseResult) -> str:
    return f"**{result.verdict}**" if result.verdict in NOT_PASSING else result.verdict


def failures_section(report: Report) -> list[str]:
    failing = report.failures()
    if not failing:
        return []
    rows = [[_verdict_cell(r), code(r.case_id), escape("; ".join(r.reasons))] for r in failing]
    return ["### Not passing", "", *_table(["verdict", "case", "reasons"], rows, [False, False, False]), ""]


def notes_section(report: Report) -> list[str]:
    """Why cases were skipped (once per backend and reason) and the warnings of passing cases."""
    skipped: dict[tuple[str, str], int] = {}
    for r in report.results:
        if r.verdict == SKIP:
            key = (r.backend, "; ".join(r.reasons) or "skipped")
            skipped[key] = skipped.get(key, 0) + 1
    lines = [f"- SKIP {n} case(s) of {escape(backend)}: {escape(reason)}" for (backend, reason), n in skipped.items()]
    lines += [f"- warning, {code(r.case_id)}: {escape(w)}" for r in report.results for w in r.warnings]
    return ["### Notes", "", *lines, ""] if lines else []


def backend_section(backend: str, kind: str, results: list[CaseResult], keep_passing: bool) -> list[str]:
    columns = columns_for(kind)
    interpreted = any(r.interpreted for r in results)
    headers = [c.header for c in columns] + ["verdict", "case"]
    right = [c.justify == "right" for c in columns] + [False, False]

    def cells(r: CaseResult) -> list[str]:
        return [escape(cell(c, r)) for c in columns] + [_verdict_cell(r), code(r.case_id)]

    note = ", Triton interpreter on CPU" if interpreted else ""
    lines = [f"### {escape(backend)} ({escape(kind)}{note})", ""]
    if len(results) <= COLLAPSE_PASSING_AFTER:
        return lines + _table(headers, [cells(r) for r in results], right) + [""]
    shown = [r for r in results if not r.passed]
    folded = [r for r in results if r.passed]
    if shown:
        lines += _table(headers, [cells(r) for r in shown], right) + [""]
    if folded and keep_passing:
        lines += [
            "<details>", f"<summary>{len(folded)} passing or skipped cases</summary>", "",
            *_table(headers, [cells(r) for r in folded], right), "", "</details>", "",
        ]
    elif folded:
        lines += [f"{len(folded)} passing or skipped cases left out to stay under GitHub's summary limit.", ""]
    return lines


def environment_section(report: Report) -> list[str]:
    if not report.environment:
        return []
    lines = ["<details>", "<summary>Environment</summary>", ""]
    for key, value in report.environment.items():
        text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        lines.append(f"- {escape(key)}: {escape('-' if text is None else text)}")
    return lines + ["", "</details>", ""]


def render_markdown_text(report: Report, keep_passing: bool = True) -> str:
    mark = "\u2705" if ran_and_passed(report) else "\u274c"  # check mark, cross mark
    lines = [f"## {mark} swiglu-check: {escape(verdict_summary(report))}", ""]
    lines += failures_section(report)
    lines += notes_section(report)
    for (backend, kind), results in group_by_backend(report).items():
        lines += backend_section(backend, kind, results, keep_passing)
    lines += environment_section(report)
    return "\n".join(lines).rstrip("\n") + "\n"


def render_markdown(report: Report, limit_bytes: int = SUMMARY_LIMIT_BYTES) -> str:
    text = render_markdown_text(report)
    if len(text.encode("utf-8")) > limit_bytes:
        text = render_markdown_text(report, keep_passing=False)
    return text
