"""Results of a run: one `CaseResult` per case, gathered in a `Report` (JSON-serialisable)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import EXIT_FAIL, EXIT_PASS

PASS = "PASS"
FAIL = "FAIL"
ERROR = "ERROR"
INCONCLUSIVE = "INCONCLUSIVE"  # the case could not show what it was meant to (e.g. clamp not reached)
SKIP = "SKIP"  # the backend does not support this combination

VERDICTS = (PASS, FAIL, ERROR, INCONCLUSIVE, SKIP)
NOT_PASSING = (FAIL, ERROR, INCONCLUSIVE)

REPORT_SCHEMA = "swiglu-check/report"
REPORT_VERSION = 1


@dataclass
class CaseResult:
    """The outcome of one case: verdict, the reasons for it, and the numbers."""

    case_id: str
    backend: str
    kind: str
    params: dict[str, Any]
    verdict: str
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    interpreted: bool = False
    seconds: float = 0.0
    details: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict not in NOT_PASSING

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = {k: _json_number(v) for k, v in self.metrics.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaseResult":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["metrics"] = {k: _from_json_number(v) for k, v in fields.get("metrics", {}).items()}
        return cls(**fields)


def _json_number(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json_number(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


@dataclass
class Report:
    """All results of a run plus what is needed to reproduce it."""

    results: list[CaseResult]
    environment: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {v: 0 for v in VERDICTS}
        for result in self.results:
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        return counts

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "version": REPORT_VERSION,
            "environment": self.environment,
            "settings": self.settings,
            "summary": self.counts(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        return cls(
            results=[CaseResult.from_dict(r) for r in data.get("results", [])],
            environment=data.get("environment", {}),
            settings=data.get("settings", {}),
        )
