"""Rendering of `bench` timings: a rich table or JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from ..bench import Timing


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def floor_us(t: Timing) -> float:
    """The workload's bytes over the copy bandwidth: the time no kernel beats by much."""
    return t.median_us * t.pct_copy / 100.0


def bench_table(timings: list[Timing], copy_gbps: float, device_name: str) -> Table:
    table = Table(title=f"bench on {device_name}: device copy {copy_gbps:.0f} GB/s (read + write)",
                  title_justify="left", header_style="bold")
    for header in ("backend", "case", "median us", "floor us", "GB/s", "% copy", "TFLOP/s", "speed-up vs ref",
                   "note"):
        table.add_column(header, justify="left" if header in ("backend", "case", "note") else "right")
    for t in timings:
        speedup = "ref" if t.reference else (f"{t.speedup:.2f}x" if t.speedup else "-")
        table.add_row(t.backend, t.label, _fmt(t.median_us), _fmt(floor_us(t)), _fmt(t.gb_per_s, 0), _fmt(t.pct_copy),
                      _fmt(t.tflops, 1) if t.tflops else "-", speedup, t.error[:80])
    return table


def bench_json(timings: list[Timing], copy_gbps: float, environment: dict[str, Any]) -> str:
    return json.dumps({"schema": "swiglu-check/bench", "version": 1, "environment": environment,
                       "copy_gb_per_s": copy_gbps, "timings": [t.to_dict() for t in timings]},
                      indent=2, default=str) + "\n"


def print_bench(console: Console, timings: list[Timing], copy_gbps: float, device_name: str) -> None:
    console.print(bench_table(timings, copy_gbps, device_name))
