"""CSV: one row per case, for spreadsheets and pandas.

Columns, in a stable order: `case_id, backend, kind, verdict`, then `params.<key>` and
`metrics.<key>` (the union over all rows, in the order keys first appear, so kinds with
different params and metrics share one file; a row lacking a key leaves it empty),
then `reasons` and `warnings` (one per line inside the quoted cell), `interpreted`,
`seconds`. Values read back exactly: floats by repr (`nan`, `inf` included), lists as
JSON, booleans as true/false, None as empty. Lines end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import io

from ..results import CaseResult, Report
from .common import exact_text

LEADING = ("case_id", "backend", "kind", "verdict")
TRAILING = ("reasons", "warnings", "interpreted", "seconds")
PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."


def _union(dicts: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for d in dicts:
        keys.update(dict.fromkeys(d))
    return list(keys)


def csv_columns(report: Report) -> list[str]:
    params = _union([r.params for r in report.results])
    metrics = _union([r.metrics for r in report.results])
    return [*LEADING, *(PARAM_PREFIX + k for k in params), *(METRIC_PREFIX + k for k in metrics), *TRAILING]


def csv_row(result: CaseResult) -> dict[str, str]:
    row = {
        "case_id": result.case_id,
        "backend": result.backend,
        "kind": result.kind,
        "verdict": result.verdict,
        "reasons": "\n".join(result.reasons),
        "warnings": "\n".join(result.warnings),
        "interpreted": exact_text(result.interpreted),
        "seconds": exact_text(float(result.seconds)),
    }
    row.update({PARAM_PREFIX + k: exact_text(v) for k, v in result.params.items()})
    row.update({METRIC_PREFIX + k: exact_text(v) for k, v in result.metrics.items()})
    return row


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    # RFC 4180 line ends (\r\n): with them the writer also quotes cells holding a bare \r
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(report), restval="")
    writer.writeheader()
    for result in report.results:
        writer.writerow(csv_row(result))
    return buffer.getvalue()
