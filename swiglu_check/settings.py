"""What a run checks and how strictly: the settings every check kind reads."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from .errors import InputError
from .inputs import InputSpec
from .ops import OpSpec, preset
from .quant import Fp8Spec, build_fp8_specs

DEFAULT_MAX_FLOOR_RATIO = 2.0
# A case "can detect a missing clamp" when the unclamped formula's floor ratio exceeds
# the pass threshold by this factor (so a backend that forgot the clamp surely FAILs).
DEFAULT_DETECT_MARGIN = 2.0
# Warn when a missing clamp would stand out by less than this over the backend's error.
DEFAULT_WEAK_POWER = 10.0
# Baselines: a case regresses when its floor ratio or rel-L2 grows by more than this.
DEFAULT_REGRESSION_FACTOR = 1.25


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds. The floor-ratio limit may differ per kind and dtype:
    `per_kind_dtype` holds (kind or '*', dtype or '*', limit); the most specific wins."""

    max_floor_ratio: float = DEFAULT_MAX_FLOOR_RATIO
    per_kind_dtype: tuple[tuple[str, str, float], ...] = ()
    detect_margin: float = DEFAULT_DETECT_MARGIN
    weak_power: float = DEFAULT_WEAK_POWER
    regression_factor: float = DEFAULT_REGRESSION_FACTOR

    def __post_init__(self) -> None:
        limits = [("max floor ratio", self.max_floor_ratio)]
        limits += [(f"floor-ratio limit of {k}/{d}", v) for k, d, v in self.per_kind_dtype]
        limits += [("regression factor", self.regression_factor), ("detect margin", self.detect_margin)]
        for name, value in limits:
            if not (math.isfinite(value) and value >= 1.0):
                raise InputError(f"{name} must be a finite number >= 1, got {value}")

    def floor_ratio_limit(self, dtype: str, kind: str = "*") -> float:
        table = {(k, d): v for k, d, v in self.per_kind_dtype}
        for key in ((kind, dtype), (kind, "*"), ("*", dtype)):
            if key in table:
                return table[key]
        return self.max_floor_ratio


@dataclass(frozen=True)
class RunSettings:
    """Everything that defines the cases of a run, except which backends."""

    op: OpSpec = field(default_factory=lambda: preset("deepseek-v4"))
    limits: tuple[float | None, ...] | None = None  # None: the op's own limit
    dtypes: tuple[str, ...] = ("bf16", "fp16", "fp32")
    shapes: tuple[tuple[int, ...], ...] | None = None  # None: the kind's default for the device
    seed: int = 0
    device: str = "cpu"
    inputs: InputSpec = field(default_factory=InputSpec)
    input_sets: tuple[str, ...] | None = None  # None: gaussian (+ gelu-tail for GELU ops)
    thresholds: Thresholds = field(default_factory=Thresholds)
    chunk_bytes: int | None = None  # memory budget of one reference chunk; None: derived
    max_memory: int | None = None  # bytes a case may need (inputs, output, reference chunks)
    fp8: tuple[Fp8Spec, ...] = field(default_factory=build_fp8_specs)  # `gated-fp8` cases: one per spec
    sweep: str | None = None  # a named set of operating points; only kinds that define it run

    @property
    def device_type(self) -> str:
        return torch.device(self.device).type

    def ops(self) -> list[OpSpec]:
        """The op once per limit asked for."""
        limits = self.limits if self.limits is not None else (self.op.limit,)
        return [self.op.with_limit(limit) for limit in limits]


_SHAPE = re.compile(r"^\s*(\d+)\s*[xX*,]\s*(\d+)\s*$")
_DIMS = re.compile(r"^\s*\d+(\s*[xX*]\s*\d+){2,4}\s*$")


def parse_shape(text: str) -> tuple[int, ...]:
    """`TxD`: T tokens (may be 0), D output width (input is T x 2D). Other kinds take
    3 to 5 dimensions (e.g. `MxKxN`); each kind runs the shapes of its own arity."""
    if _DIMS.match(text):
        dims = tuple(int(v) for v in re.split(r"\s*[xX*]\s*", text.strip()))
        if dims[-1] == 0:
            raise InputError(f"shape {text!r} has a zero last dimension")
        return dims
    match = _SHAPE.match(text)
    if not match:
        raise InputError(f"malformed shape {text!r}; expected TxD, e.g. 64x2048 (D = output width)")
    tokens, width = int(match.group(1)), int(match.group(2))
    if width == 0:
        raise InputError(f"shape {text!r} has zero width")
    return tokens, width


def parse_shapes(values: tuple[str, ...] | list[str]) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for value in values:
        for part in str(value).split(";"):
            shape = parse_shape(part)
            if shape not in shapes:
                shapes.append(shape)
    return shapes


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count: `512M`, `8GiB`, `1.5G`, or plain bytes."""
    match = _SIZE.match(str(text))
    if not match:
        raise InputError(f"malformed size {text!r}; e.g. 512M, 8G, 8GiB")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2).lower()]
    size = int(float(match.group(1)) * scale)
    if size <= 0:
        raise InputError(f"size must be positive, got {text!r}")
    return size


def resolve_device(name: str) -> str:
    """`auto` is cuda when present, else cpu; a device that is not there is an InputError."""
    key = name.strip().lower()
    if key == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(key)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise InputError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r} is not available: torch sees no CUDA GPU")
    index = device.index if device.index is not None else 0
    if index >= torch.cuda.device_count():
        raise InputError(
            f"device {name!r} is not available: {torch.cuda.device_count()} CUDA device(s) present"
        )
    return f"cuda:{index}"
