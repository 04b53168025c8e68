"""Number formatting shared by every kind's table columns."""

from __future__ import annotations

import math
from typing import Any


def fmt_num(value: Any) -> str:
    """Compact text for a metric: integers as is, floats with 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0.0:
            return "0"
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)


def fmt_ratio(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value < 1e4:
        return f"{value:.2f}"
    return fmt_num(value)


def fmt_shape(shape: Any) -> str:
    if not shape:
        return "-"
    return "x".join(str(s) for s in shape)


def fmt_coverage(metrics: dict[str, Any]) -> str:
    """`gate>L / |up|>L` as percentages, '-' for unclamped cases."""
    if "gate_above" not in metrics:
        return "-"
    return f"{metrics['gate_above']:.0%}/{metrics['up_outside']:.0%}"
