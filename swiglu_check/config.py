"""Project configuration: `[tool.swiglu-check]` in pyproject.toml, or swiglu-check.toml.

Precedence, lowest first: built-in defaults < the configuration file < CLI flags. Every
effective value remembers where it came from (`swiglu-check config` prints that).

    [tool.swiglu-check]
    op = "gpt-oss"
    limits = [7, "none"]
    dtypes = ["bf16", "fp16"]
    shapes = ["1024x2048", "257x13831"]

    [tool.swiglu-check.thresholds]
    max_floor_ratio = 2.0        # every kind and dtype
    regression_factor = 1.25     # baselines: allowed growth of floor ratio or rel-L2

    [tool.swiglu-check.thresholds.gated]
    fp32 = 3.0                   # floor-ratio limit of one kind and dtype
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import InputError

CONFIG_FILE = "swiglu-check.toml"
# key -> (type check, description). Lists may also be given as comma-separated strings.
RUN_KEYS: dict[str, str] = {
    "op": "op preset",
    "activation": "activation override",
    "layout": "layout override",
    "alpha": "alpha override",
    "beta": "beta override",
    "clamp_mode": "clamp mode override (pre or post)",
    "limits": "clamp limits (numbers or 'none')",
    "dtypes": "dtypes",
    "shapes": "shapes TxD",
    "backends": "backends to check",
    "kinds": "check kinds to run",
    "device": "device",
    "seed": "input seed",
    "clamp_fraction": "share of gates above the limit",
    "scale": "forced input standard deviation",
    "input_view": "input view (contiguous, column-slice)",
    "input_sets": "input sets (gaussian, boundary, special, heavy-tail, gelu-tail)",
    "max_memory": "memory budget of one case (e.g. 8G)",
    "sweep": "a named set of operating points (e.g. dsv4-flash)",
    "isolate": "run each backend in a child process",
    "group_size": "gated-fp8: elements per quantization group",
    "ue8m0": "gated-fp8: power-of-two scales",
    "scale_layouts": "gated-fp8: scale layouts (row, col, both)",
    "timeout": "per-case time limit in seconds",
}
THRESHOLD_KEYS: dict[str, str] = {
    "max_floor_ratio": "PASS limit on the floor ratio (every kind and dtype)",
    "regression_factor": "baseline: allowed growth factor of floor ratio and rel-L2",
    "detect_margin": "a missing clamp must exceed the limit by this factor to be detectable",
    "weak_power": "warn when a missing clamp stands out less than this over the error",
}
DTYPE_KEYS = ("fp32", "fp16", "bf16", "max_floor_ratio")


@dataclass
class Config:
    """Values from a configuration file, flattened (`thresholds.gated.fp32`)."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def source(self) -> str:
        if self.path is None:
            return "default"
        return f"{self.path.name}" if self.path.name == CONFIG_FILE else f"{self.path.name} [tool.swiglu-check]"


def find_config(start: Path | None = None) -> Path | None:
    """The nearest swiglu-check.toml, or pyproject.toml with a [tool.swiglu-check] table,
    in `start` or its parents (a swiglu-check.toml wins within one directory)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "swiglu-check" in _read_toml(pyproject).get("tool", {}):
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def load_config(path: Path | None = None, *, search: bool = True) -> Config:
    """Read and validate a configuration file (the given one, or the nearest)."""
    if path is None and search:
        path = find_config()
    if path is None:
        return Config()
    if not path.is_file():
        raise InputError(f"configuration file {path} does not exist")
    data = _read_toml(path)
    table = data.get("tool", {}).get("swiglu-check", {}) if path.name == "pyproject.toml" else data
    where = f"{path.name}" + (" [tool.swiglu-check]" if path.name == "pyproject.toml" else "")
    return Config(path=path, values=_flatten(table, where))


def _flatten(table: dict[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name == "thresholds":
            if not isinstance(value, dict):
                raise InputError(f"{where}: 'thresholds' must be a table")
            values.update(_flatten_thresholds(value, where))
        elif name in RUN_KEYS:
            values[name] = value
        else:
            raise InputError(f"{where}: unknown key {key!r}; known: {', '.join([*RUN_KEYS, 'thresholds'])}")
    return values


def _flatten_thresholds(table: dict[str, Any], where: str) -> dict[str, Any]:
    from .kinds import KIND_MODULES

    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name in THRESHOLD_KEYS:
            values[f"thresholds.{name}"] = _positive(value, f"{where} thresholds.{key}")
        elif key in KIND_MODULES:
            if not isinstance(value, dict):
                raise InputError(f"{where}: thresholds.{key} must be a table of dtype = limit")
            for dtype, limit in value.items():
                if dtype.replace("-", "_") not in DTYPE_KEYS:
                    raise InputError(f"{where}: thresholds.{key}: unknown key {dtype!r}; use {', '.join(DTYPE_KEYS)}")
                values[f"thresholds.{key}.{dtype.replace('-', '_')}"] = _positive(limit, f"{where} thresholds.{key}.{dtype}")
        else:
            known = ", ".join([*THRESHOLD_KEYS, *KIND_MODULES])
            raise InputError(f"{where}: unknown threshold {key!r}; known: {known}")
    return values


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def kind_dtype_limits(values: dict[str, Any]) -> tuple[tuple[str, str, float], ...]:
    """(kind, dtype or '*', limit) entries from flattened `thresholds.<kind>.<dtype>` keys."""
    entries = []
    for key, value in values.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "thresholds":
            dtype = "*" if parts[2] == "max_floor_ratio" else parts[2]
            entries.append((parts[1], dtype, value))
    return tuple(entries)
