"""The human report: one rich table per backend, then reasons, warnings and a summary."""

from __future__ import annotations

import io
import os
import sys
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results import ERROR, FAIL, INCONCLUSIVE, PASS, SKIP, CaseResult, Report
from .common import cell, columns_for

VERDICT_STYLE = {PASS: "bold green", FAIL: "bold red", ERROR: "bold magenta", INCONCLUSIVE: "bold yellow", SKIP: "dim"}
DEFAULT_WIDTH = 180  # when not writing to a terminal (CI logs): wide enough for the case ids


def make_console(file: IO[str] | None = None) -> Console:
    file = file or sys.stdout
    width = None if file.isatty() else int(os.environ.get("COLUMNS", DEFAULT_WIDTH))
    return Console(file=file, width=width, soft_wrap=False, highlight=False)


def backend_table(backend: str, rows: list[CaseResult]) -> Table:
    columns = columns_for(rows[0].kind)
    interpreted = any(r.interpreted for r in rows)
    title = f"{backend}  [dim]({rows[0].kind}{', Triton interpreter on CPU' if interpreted else ''})[/dim]"
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column.header, justify=column.justify, no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    if interpreted:
        table.add_column("mode", no_wrap=True)
    table.add_column("case id", style="dim", overflow="fold")
    for row in rows:
        cells = [cell(column, row) for column in columns]
        verdict = Text(row.verdict, style=VERDICT_STYLE.get(row.verdict, ""))
        extra = ["interp" if row.interpreted else "native"] if interpreted else []
        table.add_row(*cells, verdict, *extra, row.case_id)
    return table


def write_table(report: Report, console: Console) -> None:
    by_backend: dict[str, list[CaseResult]] = {}
    for result in report.results:
        by_backend.setdefault(result.backend, []).append(result)
    for backend, rows in by_backend.items():
        console.print(backend_table(backend, rows))
    notes = [r for r in report.results if r.reasons and r.verdict != SKIP]
    if notes:
        console.print("\n[bold]Why not PASS[/bold]")
        for r in notes:
            style = VERDICT_STYLE.get(r.verdict, "")
            for reason in r.reasons:
                console.print(Text.assemble((f"{r.verdict:<12}", style), f" {r.case_id}: {reason}"))
    skipped = {(r.backend, r.reasons[0]) for r in report.results if r.verdict == SKIP and r.reasons}
    for backend, reason in sorted(skipped):
        console.print(Text(f"SKIP         {backend}: {reason}", style="dim"))
    warned = [(r, w) for r in report.results for w in r.warnings]
    if warned:
        console.print("\n[bold yellow]Warnings[/bold yellow]")
        for r, w in warned:
            console.print(Text(f"  {r.case_id}: {w}"))
    console.print(summary_line(report))


def summary_line(report: Report) -> Text:
    counts = report.counts()
    parts = [(f"{counts[v]} {v}", VERDICT_STYLE[v]) for v in (PASS, FAIL, ERROR, INCONCLUSIVE, SKIP) if counts[v]]
    n = len(report.results)
    text = Text(f"\n{n} case{'' if n == 1 else 's'}: ")
    for i, (part, style) in enumerate(parts):
        text.append(part, style=style)
        if i < len(parts) - 1:
            text.append(", ")
    device = report.environment.get("device_name") or report.environment.get("device", "")
    if device:
        text.append(f"  on {device}", style="dim")
    return text


def failure_table(report: Report) -> str:
    """Plain text of the cases that did not pass: their rows, then the reasons."""
    failing = Report(results=report.failures(), environment=report.environment, settings=report.settings)
    return render_table(failing)


def render_table(report: Report) -> str:
    buffer = io.StringIO()
    write_table(report, Console(file=buffer, width=DEFAULT_WIDTH, soft_wrap=False, highlight=False, color_system=None))
    return buffer.getvalue()
