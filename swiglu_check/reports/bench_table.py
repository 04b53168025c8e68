"""Rendering of `bench` timings: a rich table or JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from ..bench import Timing

TIMING_TITLES = {
    "events": "per-call CUDA events, calls enqueued back to back",
    "graph": "CUDA-graph replay of back-to-back calls",
}


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def floor_us(t: Timing) -> float:
    """The workload's bytes over the copy bandwidth: the time no kernel beats by much."""
    return t.median_us * t.pct_copy / 100.0


def row_note(t: Timing, timing: str) -> str:
    """The error, else a note on a row timed other than the table's method."""
    if t.error:
        return t.error[:80]
    if t.note:
        return t.note[:80]
    return f"timed by {t.method}" if t.method != timing else ""


def bench_table(timings: list[Timing], copy_gbps: float, device_name: str, timing: str = "events") -> Table:
    title = (f"bench on {device_name}, timing: {timing} ({TIMING_TITLES.get(timing, timing)}); device copy"
             f" {copy_gbps:.0f} GB/s (read + write, 1 GiB, same timing); % same-size copy: over a copy of the"
             " row's own bytes, same timing")
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in ("backend", "case", "median us", "floor us", "GB/s", "% copy", "copy us (same size)",
                   "% same-size copy", "TFLOP/s", "speed-up vs ref", "note"):
        table.add_column(header, justify="left" if header in ("backend", "case", "note") else "right")
    for t in timings:
        speedup = "ref" if t.reference else (f"{t.speedup:.2f}x" if t.speedup else "-")
        table.add_row(t.backend, t.label, _fmt(t.median_us), _fmt(floor_us(t)), _fmt(t.gb_per_s, 0), _fmt(t.pct_copy),
                      _fmt(t.same_size_copy_us), _fmt(t.pct_same_size_copy), _fmt(t.tflops, 1) if t.tflops else "-",
                      speedup, row_note(t, timing))
    return table


def bench_json(timings: list[Timing], copy_gbps: float, environment: dict[str, Any], timing: str = "events") -> str:
    return json.dumps({"schema": "swiglu-check/bench", "version": 2, "timing": timing, "environment": environment,
                       "copy_gb_per_s": copy_gbps, "timings": [t.to_dict() for t in timings]},
                      indent=2, default=str) + "\n"


def print_bench(console: Console, timings: list[Timing], copy_gbps: float, device_name: str,
                timing: str = "events") -> None:
    console.print(bench_table(timings, copy_gbps, device_name, timing))
