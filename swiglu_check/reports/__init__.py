"""Report renderers: `table` (rich), `json`. Each takes a Report and returns text."""

from __future__ import annotations

import json
from typing import Callable

from ..errors import InputError
from ..results import Report
from .table import render_table

Renderer = Callable[[Report], str]


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


RENDERERS: dict[str, Renderer] = {
    "table": render_table,
    "json": render_json,
}


def render(report: Report, fmt: str) -> str:
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise InputError(f"unknown format {fmt!r}; choose from {', '.join(RENDERERS)}") from None
    return renderer(report)
