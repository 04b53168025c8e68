"""Rendering of a baseline comparison."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..baseline import IMPROVED, MISSING, NEW, REGRESSED, UNCHANGED, Comparison

STATUS_STYLE = {REGRESSED: "bold red", MISSING: "bold red", IMPROVED: "green", NEW: "cyan", UNCHANGED: "dim"}


def _metric(entry, key: str) -> str:
    if entry is None or key not in entry.metrics:
        return "-"
    return f"{entry.metrics[key]:.4g}"


def write_comparison(comparison: Comparison, console: Console, *, show_unchanged: bool = False) -> None:
    table = Table(title=f"baseline comparison (regression factor {comparison.factor:g})",
                  title_justify="left", header_style="bold")
    for header in ("status", "case id", "verdict", "floor ratio", "rel-L2", "why"):
        table.add_column(header, overflow="fold")
    order = {REGRESSED: 0, MISSING: 1, NEW: 2, IMPROVED: 3, UNCHANGED: 4}
    for c in sorted(comparison.changes, key=lambda c: order[c.status]):
        if c.status == UNCHANGED and not show_unchanged:
            continue
        verdict = f"{c.old.verdict if c.old else '-'} -> {c.new.verdict if c.new else '-'}"
        ratio = f"{_metric(c.old, 'floor_ratio')} -> {_metric(c.new, 'floor_ratio')}"
        rel = f"{_metric(c.old, 'rel_l2')} -> {_metric(c.new, 'rel_l2')}"
        table.add_row(Text(c.status, style=STATUS_STYLE[c.status]), c.case_id, verdict, ratio, rel, "; ".join(c.why))
    if table.row_count:
        console.print(table)
    counts = ", ".join(f"{comparison.count(s)} {s}" for s in (REGRESSED, MISSING, NEW, IMPROVED, UNCHANGED))
    style = "bold red" if comparison.regressions else "bold green"
    console.print(Text(f"baseline: {counts}", style=style))


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2) + "\n"
