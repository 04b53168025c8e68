"""Rendering of a `diagnose` result: rich tables and the sentence, or JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..diagnose import Diagnosis
from ..kinds.format import fmt_num, fmt_ratio


def diagnosis_json(result: Diagnosis) -> str:
    return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"


def probe_table(result: Diagnosis) -> Table:
    table = Table(title="probes", title_justify="left", header_style="bold")
    for header in ("probe", "called with L", "elements", "floor", "status", "separates"):
        table.add_column(header, justify="left" if header in ("probe", "status", "separates") else "right")
    for probe in result.probes:
        status = "ran" if probe.ran else f"skipped: {probe.skipped}"
        if probe.nonfinite:
            status += f" ({probe.nonfinite} NaN/Inf)"
        limit = "none" if probe.limit is None else f"{probe.limit:g}"
        table.add_row(probe.name, limit, str(probe.elements), fmt_num(probe.floor), status, probe.purpose)
    return table


def candidate_table(result: Diagnosis, top: int) -> Table:
    shown = result.candidates if top <= 0 else result.candidates[:top]
    title = (f"candidates, closest first ({len(shown)} of {len(result.candidates)});"
             " distance = rel-L2 to the candidate / its rounding floor, largest over the probes")
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("candidate (difference from the asked op)", overflow="fold")
    table.add_column("realization")
    table.add_column("distance", justify="right")
    probes = [p.name for p in result.probes if p.ran]
    for name in probes:
        table.add_column(name, justify="right")
    for rank, score in enumerate(shown, 1):
        style = "bold" if result.best is not None and score is result.best else ""
        table.add_row(str(rank), Text(score.label, style=style), score.realization, fmt_ratio(score.distance),
                      *(fmt_ratio(score.per_probe.get(name)) for name in probes))
    return table


def print_diagnosis(console: Console, result: Diagnosis, top: int = 12) -> None:
    shape = "x".join(str(v) for v in result.shape)
    formula = result.asked.describe()
    asked = result.asked_name if formula in result.asked_name else f"{result.asked_name} ({formula})"
    console.print(f"[bold]diagnose {result.backend}[/bold]: asked {asked}, {result.dtype}, {shape} per probe,"
                  f" seed {result.seed}, {result.device}", soft_wrap=True)
    if result.probes:
        console.print(probe_table(result))
    if result.candidates:
        console.print(candidate_table(result, top))
    style = "bold green" if result.exit_code == 0 else "bold red"
    # one line each, never wrapped: CI logs are searched for these
    console.print(Text.assemble((f"{result.backend}: ", style), result.sentence), soft_wrap=True)
    for note in result.notes:
        console.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)
