"""Baselines: remember a run's numbers, and tell what regressed in a later run.

A case regresses when

- its floor ratio or rel-L2 grows by more than the regression factor (default 1.25),
- its verdict flips from PASS to FAIL, ERROR, INCONCLUSIVE or SKIP, or
- it disappears from the new run.

New cases are listed, never failed. A baseline file is versioned JSON; a full report JSON
(`run --format json`) is accepted wherever a baseline is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .results import NOT_PASSING, PASS, REPORT_SCHEMA, SKIP, Report

BASELINE_SCHEMA = "swiglu-check/baseline"
BASELINE_VERSION = 1
COMPARED_METRICS = ("floor_ratio", "rel_l2")
_TINY = 1e-300

REGRESSED, IMPROVED, UNCHANGED, NEW, MISSING = "regressed", "improved", "unchanged", "new", "missing"


@dataclass(frozen=True)
class Entry:
    """What a baseline keeps of one case."""

    case_id: str
    backend: str
    kind: str
    verdict: str
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "kind": self.kind, "verdict": self.verdict,
                **{k: _json_float(v) for k, v in self.metrics.items()}}


def _json_float(value: float) -> Any:
    return value if math.isfinite(value) else str(value)


def entries_of(report: Report) -> dict[str, Entry]:
    entries = {}
    for r in report.results:
        metrics = {k: float(r.metrics[k]) for k in COMPARED_METRICS if isinstance(r.metrics.get(k), (int, float))}
        entries[r.case_id] = Entry(r.case_id, r.backend, r.kind, r.verdict, metrics)
    return entries


def save_baseline(report: Report, path: Path) -> None:
    data = {
        "schema": BASELINE_SCHEMA,
        "version": BASELINE_VERSION,
        "environment": report.environment,
        "settings": report.settings,
        "cases": {case_id: e.to_dict() for case_id, e in entries_of(report).items()},
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def load_entries(path: Path) -> dict[str, Entry]:
    """Entries from a baseline file or a report JSON, with one-line errors."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"baseline file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict) or data.get("schema") not in (BASELINE_SCHEMA, REPORT_SCHEMA):
        raise InputError(f"{path} is not a swiglu-check baseline or report (no swiglu-check schema field)")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"{path}: unsupported {data['schema']} version {version!r}; regenerate it with --save-baseline")
    if version > BASELINE_VERSION:
        raise InputError(f"{path} was written by a newer swiglu-check ({data['schema']} version {version}); upgrade")
    if data["schema"] == REPORT_SCHEMA:
        return entries_of(Report.from_dict(data))
    entries = {}
    try:
        for case_id, item in data["cases"].items():
            metrics = {k: float(item[k]) for k in COMPARED_METRICS if k in item}
            entries[case_id] = Entry(case_id, item["backend"], item["kind"], item["verdict"], metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: malformed baseline entry ({type(exc).__name__}: {exc})") from None
    return entries


@dataclass
class Change:
    case_id: str
    status: str
    old: Entry | None
    new: Entry | None
    why: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    changes: list[Change]
    factor: float

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.status in (REGRESSED, MISSING)]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "regressions": len(self.regressions),
            "changes": [
                {"case_id": c.case_id, "status": c.status, "why": c.why,
                 "old": c.old.to_dict() if c.old else None, "new": c.new.to_dict() if c.new else None}
                for c in self.changes
            ],
        }


def compare(old: dict[str, Entry], new: dict[str, Entry], factor: float) -> Comparison:
    """Each case of both runs, classified (rules in the module docstring)."""
    if not (math.isfinite(factor) and factor >= 1.0):
        raise InputError(f"regression factor must be a finite number >= 1, got {factor}")
    changes: list[Change] = []
    for case_id, before in old.items():
        after = new.get(case_id)
        if after is None:
            changes.append(Change(case_id, MISSING, before, None, ["case disappeared from the new run"]))
            continue
        worse, better = [], []
        if before.verdict == PASS and (after.verdict in NOT_PASSING or after.verdict == SKIP):
            worse.append(f"verdict {before.verdict} -> {after.verdict}")
        for key in COMPARED_METRICS:
            if key not in before.metrics or key not in after.metrics:
                continue
            a, b = before.metrics[key], after.metrics[key]
            if b > max(a, _TINY) * factor or (math.isnan(b) and not math.isnan(a)):
                worse.append(f"{key} {a:.4g} -> {b:.4g} (x{_growth(a, b)})")
            elif a > max(b, _TINY) * factor:
                better.append(f"{key} {a:.4g} -> {b:.4g}")
        if before.verdict != PASS and after.verdict == PASS:
            better.append(f"verdict {before.verdict} -> PASS")
        status = REGRESSED if worse else IMPROVED if better else UNCHANGED
        changes.append(Change(case_id, status, before, after, worse or better))
    for case_id, after in new.items():
        if case_id not in old:
            changes.append(Change(case_id, NEW, None, after, [f"new case ({after.verdict})"]))
    return Comparison(changes, factor)


def _growth(a: float, b: float) -> str:
    return "inf" if a == 0 else f"{b / a:.2f}"
