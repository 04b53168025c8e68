"""Tuned launch-config tables by size bucket: `((largest size of the bucket, config), ...)`,
the last bucket catching everything larger. The tuner scripts write them as JSON
(`table_json`); an environment variable naming such a file replaces a built-in table
(`active_table`, read once per path, not per call)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, TypeVar

C = TypeVar("C")
Table = tuple[tuple[int, Any], ...]

_LOADED: dict[tuple[str, type, str], Table] = {}


def table_json(table: Table, key: str = "m_max") -> str:
    """The table as JSON: `[{key: int, "config": {...}}, ...]`, one bucket per line."""
    rows = [json.dumps({key: top, "config": asdict(cfg)}) for top, cfg in table]
    return "[\n " + ",\n ".join(rows) + "\n]\n"


def load_table(path: str, config_type: type[C], key: str = "m_max") -> tuple[tuple[int, C], ...]:
    """A table written as `table_json` (or by a tuner in that form)."""
    with open(path) as f:
        return tuple((int(row[key]), config_type(**row["config"])) for row in json.load(f))


def active_table(env: str, default: tuple[tuple[int, C], ...], config_type: type[C],
                 key: str = "m_max") -> tuple[tuple[int, C], ...]:
    """`default`, or the table in the file the environment variable `env` names."""
    path = os.environ.get(env)
    if not path:
        return default
    cache_key = (path, config_type, key)
    if cache_key not in _LOADED:
        _LOADED[cache_key] = load_table(path, config_type, key)
    return _LOADED[cache_key]


def pick(table: tuple[tuple[int, C], ...], size: int) -> C:
    """The config of the first bucket that holds `size` (the last one past the end)."""
    return next((cfg for top, cfg in table if size <= top), table[-1][1])
