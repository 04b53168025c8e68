"""The op spec: which gated activation a backend must compute (DESIGN.md section 2).

Input `x` has shape `[..., 2*D]`, output `[..., D]`:

    gate, up = split(x, layout)
    clamp "pre":  gate = min(gate, L); up = clamp(up, -L, L)      (the standard one)
    clamp "post": up = clamp(up, -L, L); a = min(act(gate), L)     (a distinct variant)
    out = act(gate) * (up + beta)

`limit=None` means no clamp at all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import InputError

ACTIVATIONS = ("silu", "gelu", "gelu_tanh")
LAYOUTS = ("halves", "interleaved")
CLAMP_MODES = ("pre", "post")


@dataclass(frozen=True)
class OpSpec:
    """One gated activation, fully specified (the contract a backend is checked against)."""

    activation: str = "silu"
    alpha: float = 1.0
    beta: float = 0.0
    limit: float | None = None
    layout: str = "halves"
    clamp: str = "pre"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        if self.layout not in LAYOUTS:
            raise InputError(f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        if self.clamp not in CLAMP_MODES:
            raise InputError(f"unknown clamp mode {self.clamp!r}; choose from pre, post")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise InputError(f"{name} must be a finite number, got {value}")
        if self.limit is not None:
            validate_limit(self.limit)

    @property
    def clamped(self) -> bool:
        return self.limit is not None

    def with_limit(self, limit: float | None) -> "OpSpec":
        return replace(self, limit=limit)

    @property
    def label(self) -> str:
        """Compact, parseable name of everything but the limit, e.g. `silu+a1.702+b1+il`."""
        parts = [self.activation]
        if self.alpha != 1.0:
            parts.append(f"a{_num(self.alpha)}")
        if self.beta != 0.0:
            parts.append(f"b{_num(self.beta)}")
        if self.layout == "interleaved":
            parts.append("il")
        if self.clamp == "post":
            parts.append("post")
        return "+".join(parts)

    @classmethod
    def from_label(cls, label: str, limit: float | None = None) -> "OpSpec":
        """Inverse of `label`."""
        head, *rest = label.split("+")
        fields: dict[str, Any] = {"activation": head, "limit": limit}
        for part in rest:
            if part == "il":
                fields["layout"] = "interleaved"
            elif part == "post":
                fields["clamp"] = "post"
            elif part[:1] in ("a", "b") and is_number(part[1:]):
                fields["alpha" if part[0] == "a" else "beta"] = float(part[1:])
            else:
                raise InputError(f"malformed op label {label!r} (bad part {part!r})")
        return cls(**fields)

    def describe(self) -> str:
        """Human-readable formula, e.g. for report headers."""
        act = self.activation if self.alpha == 1.0 else f"{self.activation}(alpha={_num(self.alpha)})"
        up = "up" if self.beta == 0.0 else f"(up + {_num(self.beta)})"
        clamp = "no clamp" if self.limit is None else f"{self.clamp}-clamp L={_num(self.limit)}"
        return f"{act}(gate) * {up}, {self.layout}, {clamp}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: float) -> str:
    """Shortest faithful text for a float: 7.0 -> '7', 1.702 -> '1.702'."""
    return f"{value:g}" if float(f"{value:g}") == value else repr(value)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate_limit(limit: float) -> float:
    """A clamp limit must be a finite positive number."""
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise InputError(f"limit must be a number or 'none', got {limit!r}")
    if math.isnan(limit) or math.isinf(limit):
        raise InputError(f"limit must be finite, got {limit}")
    if limit <= 0:
        raise InputError(f"limit must be > 0, got {_num(float(limit))}")
    return float(limit)


PRESETS: dict[str, OpSpec] = {
    "deepseek-v4": OpSpec(activation="silu", limit=10.0, layout="halves"),
    "gpt-oss": OpSpec(activation="silu", alpha=1.702, beta=1.0, limit=7.0, layout="interleaved"),
    "llama": OpSpec(activation="silu", limit=None, layout="halves"),
    "gemma": OpSpec(activation="gelu_tanh", limit=None, layout="halves"),
}


def preset(name: str) -> OpSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown op {name!r}; presets: {', '.join(PRESETS)}") from None


def parse_limit(text: str) -> float | None:
    """Parse one limit: a positive number, or 'none' for no clamp."""
    cleaned = text.strip().lower()
    if cleaned in ("none", "off", "no"):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        raise InputError(f"limit must be a positive number or 'none', got {text!r}") from None
    return validate_limit(value)


def parse_limits(values: tuple[str, ...] | list[str]) -> list[float | None]:
    """Parse repeatable, comma-separated limits, keeping order and dropping repeats."""
    limits: list[float | None] = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                raise InputError(f"empty limit in {value!r}")
            limit = parse_limit(part)
            if limit not in limits:
                limits.append(limit)
    return limits


def build_op(
    name: str = "deepseek-v4",
    *,
    activation: str | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    layout: str | None = None,
    clamp: str | None = None,
) -> OpSpec:
    """A preset with individual fields overridden (the CLI flags)."""
    spec = preset(name)
    overrides = {
        key: value
        for key, value in dict(
            activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp
        ).items()
        if value is not None
    }
    return replace(spec, **overrides)
