"""Tuned launch-config tables by size bucket: `((largest size of the bucket, config), ...)`,
the last bucket catching everything larger. The tuner scripts write them as JSON
(`table_json`); an environment variable naming such a file replaces a built-in table
(`active_table`, read once per path, not per call).

A table may also be kept per weight format (`{"nvfp4": table, "mxfp4": table}`). Its JSON
file (`tables_json`, `load_tables`, `active_tables`) is either one list of rows, which
then applies to every format, or an object with one list of rows for each format.
A malformed file raises a one-line ValueError that names the file and what is wrong."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

C = TypeVar("C")
Table = tuple[tuple[int, Any], ...]

_LOADED: dict[tuple, Any] = {}


def _rows_json(table: Table, key: str, indent: str) -> str:
    rows = [json.dumps({key: top, "config": asdict(cfg)}) for top, cfg in table]
    return "[\n" + ",\n".join(indent + " " + row for row in rows) + "\n" + indent + "]"


def table_json(table: Table, key: str = "m_max") -> str:
    """The table as JSON: `[{key: int, "config": {...}}, ...]`, one bucket per line."""
    return _rows_json(table, key, "") + "\n"


def tables_json(by_format: Mapping[str, Table], key: str = "m_max") -> str:
    """Per-format tables as JSON: one list of rows (`table_json`) when every format has the
    same table, else `{format: [rows...], ...}`."""
    tables = list(by_format.values())
    if not tables:
        raise ValueError("no tables to write")
    if all(table == tables[0] for table in tables):
        return table_json(tables[0], key)
    parts = [f" {json.dumps(fmt)}: {_rows_json(table, key, ' ')}" for fmt, table in by_format.items()]
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _read_json(path: str) -> Any:
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _parse_rows(rows: Any, config_type: type[C], key: str, where: str) -> tuple[tuple[int, C], ...]:
    """The table in the JSON rows `rows`; `where` names them in an error."""
    shape = f'a non-empty list of {{"{key}": int, "config": {{...}}}} rows'
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: expected {shape}, got {type(rows).__name__}{'' if rows else ' (empty)'}")
    table = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or key not in row or not isinstance(row.get("config"), dict):
            raise ValueError(f"{where}: row {i} is not {{\"{key}\": int, \"config\": {{...}}}}: {json.dumps(row)}")
        try:
            table.append((int(row[key]), config_type(**row["config"])))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: row {i}: {exc}") from None
    return tuple(table)


def load_table(path: str, config_type: type[C], key: str = "m_max") -> tuple[tuple[int, C], ...]:
    """A table written as `table_json` (or by a tuner in that form)."""
    return _parse_rows(_read_json(path), config_type, key, path)


def load_tables(path: str, config_type: type[C], formats: Sequence[str],
                key: str = "m_max") -> dict[str, tuple[tuple[int, C], ...]]:
    """Per-format tables from a file written as `tables_json`: a list of rows (the same
    table for every format in `formats`) or an object with a list of rows for each."""
    data = _read_json(path)
    if isinstance(data, list):
        return dict.fromkeys(formats, _parse_rows(data, config_type, key, path))
    expected = ", ".join(formats)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a list of rows or an object of them by format ({expected}),"
                         f" got {type(data).__name__}")
    unknown = [name for name in data if name not in formats]
    if unknown:
        raise ValueError(f"{path}: unknown format {', '.join(map(repr, unknown))} (expected {expected})")
    missing = [fmt for fmt in formats if fmt not in data]
    if missing:
        raise ValueError(f"{path}: no table for {', '.join(map(repr, missing))} (an object must give every"
                         f" format: {expected}; a list applies to all)")
    return {fmt: _parse_rows(data[fmt], config_type, key, f"{path} [{fmt}]") for fmt in formats}


def _active(env: str, default: Any, cache_key: tuple, load: Callable[[str], Any]) -> Any:
    """`default`, or `load(path)` of the file the environment variable `env` names (once per path)."""
    path = os.environ.get(env)
    if not path:
        return default
    cache_key = (path, *cache_key)
    if cache_key not in _LOADED:
        _LOADED[cache_key] = load(path)
    return _LOADED[cache_key]


def active_table(env: str, default: tuple[tuple[int, C], ...], config_type: type[C],
                 key: str = "m_max") -> tuple[tuple[int, C], ...]:
    """`default`, or the table in the file the environment variable `env` names."""
    return _active(env, default, (config_type, key), lambda path: load_table(path, config_type, key))


def active_tables(env: str, defaults: Mapping[str, tuple[tuple[int, C], ...]], config_type: type[C],
                  key: str = "m_max") -> Mapping[str, tuple[tuple[int, C], ...]]:
    """`defaults` (a table per format), or the tables in the file the environment variable
    `env` names (`load_tables`, for the formats of `defaults`)."""
    formats = tuple(defaults)
    return _active(env, defaults, ("by format", config_type, key, formats),
                   lambda path: load_tables(path, config_type, formats, key))


def pick(table: tuple[tuple[int, C], ...], size: int) -> C:
    """The config of the first bucket that holds `size` (the last one past the end)."""
    return next((cfg for top, cfg in table if size <= top), table[-1][1])


def pick_by_format(env: str, defaults: Mapping[str, tuple[tuple[int, C], ...]], config_type: type[C], fmt: str,
                   size: int, key: str = "m_max") -> C:
    """`pick` from format `fmt`'s table in effect: `defaults[fmt]`, or the override file's
    (`active_tables`). The caller checks `fmt`."""
    return pick(active_tables(env, defaults, config_type, key)[fmt], size)
