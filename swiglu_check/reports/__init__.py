"""Report renderers: `table` (rich), `json`, `junit`, `markdown`, `csv`.

Each takes a Report and returns text; every kind renders (the human formats use the
kind's `columns`, CSV the raw params and metrics), so a new kind needs no change here.
"""

from __future__ import annotations

import json
from typing import Callable

from ..errors import InputError
from ..results import Report
from .csv_report import render_csv
from .junit import render_junit
from .markdown import render_markdown
from .table import render_table

Renderer = Callable[[Report], str]


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


RENDERERS: dict[str, Renderer] = {
    "table": render_table,
    "json": render_json,
    "junit": render_junit,
    "markdown": render_markdown,
    "csv": render_csv,
}


def render(report: Report, fmt: str) -> str:
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise InputError(f"unknown format {fmt!r}; choose from {', '.join(RENDERERS)}") from None
    return renderer(report)
