"""Seeded, reproducible inputs that exercise the clamp (DESIGN.md section 3).

Values are drawn from a seeded CPU generator in float32, in fixed-size row blocks (so
host memory stays bounded and the stream does not depend on any memory budget), then
cast to the case dtype and moved to the device: one seed gives bit-identical inputs on
every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

from .errors import InputError

DEFAULT_CLAMP_FRACTION = 0.30
# contiguous: a plain [T, 2D] tensor. column-slice: the same values as a column slice
# x = big[:, 1:1+2D] of a NaN-padded [T, 2D+2] tensor: the data pointer is misaligned by
# one element and rows are strided, as when an engine passes a slice of a fused output.
# A kernel that reads outside the slice picks up NaN and fails the NaN check.
VIEWS = ("contiguous", "column-slice")

# Input sets (`--inputs`), each with one purpose:
#   gaussian    N(0, s^2), s from the clamp fraction: the general case, exercises the clamp
#   boundary    gaussian plus values at the limit and one ULP either side, +-0, subnormals,
#               the dtype's largest finite values (a quarter of the elements)
#   special     gaussian plus +-inf and NaN (a tenth of the elements): NaN/Inf semantics
#   heavy-tail  Student-t (3 degrees of freedom), scaled so the clamp fraction holds
#   gelu-tail   gates in [-5, -2], where tanh GELU and erf GELU differ most (relative to
#               their value), ups gaussian: tells the GELU variants apart
DISTRIBUTIONS = ("gaussian", "boundary", "special", "heavy-tail", "gelu-tail")
# sets whose gates are drawn to reach the limit: a clamped case on them must expose a
# missing clamp (the INCONCLUSIVE rule applies)
CLAMP_EXERCISING = ("gaussian", "boundary", "heavy-tail")
_HEAVY_TAIL_DOF = 3
_POISON_BITS = {torch.float32: 0x7FA5A5A5, torch.float16: 0x7D5A, torch.bfloat16: 0x7FA5}
_INT_OF = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
_BLOCK_ELEMENTS = 1 << 22  # rows are drawn in blocks of about this many values


@dataclass(frozen=True)
class InputSpec:
    """How to draw inputs: the distribution and its scale.

    `scale` forces the standard deviation; otherwise clamped ops get the scale at which
    `clamp_fraction` of the gates exceed the limit, and unclamped ops unit scale.
    """

    distribution: str = "gaussian"
    clamp_fraction: float = DEFAULT_CLAMP_FRACTION
    scale: float | None = None
    view: str = "contiguous"

    def __post_init__(self) -> None:
        if not (0.0 < self.clamp_fraction < 0.5):
            raise InputError(
                f"clamp fraction must be in (0, 0.5), got {self.clamp_fraction}"
                " (it is the share of gates above the limit)"
            )
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"scale must be a finite positive number, got {self.scale}")
        if self.distribution not in DISTRIBUTIONS:
            raise InputError(
                f"unknown input set {self.distribution!r}; choose from {', '.join(DISTRIBUTIONS)}"
            )
        if self.view not in VIEWS:
            raise InputError(f"unknown input view {self.view!r}; choose from {', '.join(VIEWS)}")


def gaussian_scale_for(limit: float, clamp_fraction: float) -> float:
    """Standard deviation at which P(gate > limit) == clamp_fraction for N(0, s^2)."""
    z = NormalDist().inv_cdf(1.0 - clamp_fraction)
    return limit / z


def resolve_scale(spec: InputSpec, limit: float | None) -> float:
    if spec.scale is not None:
        return spec.scale
    if limit is None:
        return 1.0
    return gaussian_scale_for(limit, spec.clamp_fraction)


def gaussian(
    rows: int,
    cols: int,
    *,
    scale: float,
    seed: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`rows x cols` values of N(0, scale^2), cast to dtype, on device."""
    out = torch.empty((rows, cols), dtype=dtype, device=device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    block_rows = max(1, _BLOCK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, block_rows):
        stop = min(rows, start + block_rows)
        block = torch.randn((stop - start, cols), generator=generator, dtype=torch.float32)
        out[start:stop] = (block * scale).to(dtype)
    return out


def uniform(
    rows: int,
    cols: int,
    *,
    low: float,
    high: float,
    seed: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`rows x cols` values of U(low, high) from a seeded CPU generator, cast, on device
    (small probe tensors: one draw, no blocking)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    values = torch.rand((rows, cols), generator=generator, dtype=torch.float32) * (high - low) + low
    return values.to(dtype=dtype, device=device)


def gated_input(
    tokens: int,
    width: int,
    *,
    dtype: torch.dtype,
    limit: float | None,
    spec: InputSpec,
    seed: int,
    device: torch.device | str = "cpu",
    layout: str = "halves",
) -> torch.Tensor:
    """The `[tokens, 2*width]` input of a gated-activation case (sets: see DISTRIBUTIONS).
    Only `gelu-tail` depends on the layout (it places its values at the gate positions)."""
    cols = 2 * width
    scale = resolve_scale(spec, limit)
    kind = spec.distribution
    if kind == "heavy-tail":
        x = _heavy_tail(tokens, cols, limit, spec, seed).to(dtype)
    elif kind == "gelu-tail":
        x = gaussian(tokens, cols, scale=scale, seed=seed, dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed + 1)
        tail = -2.0 - 3.0 * torch.rand((tokens, width), generator=generator)
        if layout == "interleaved":
            x[:, 0::2] = tail
        else:
            x[:, :width] = tail
        x = x.to(dtype)
    else:
        x = gaussian(tokens, cols, scale=scale, seed=seed, dtype=dtype)
        if kind == "boundary":
            _plant(x, boundary_values(dtype, limit), share=0.25, seed=seed + 1)
        elif kind == "special":
            _plant(x, torch.tensor([math.nan, math.inf, -math.inf], dtype=dtype), share=0.10, seed=seed + 1)
    return as_view(x.to(device), spec.view)


def _plant(x: torch.Tensor, values: torch.Tensor, *, share: float, seed: int) -> None:
    """Overwrite a seeded random `share` of x's elements with `values`, cycled."""
    generator = torch.Generator().manual_seed(seed)
    count = int(x.numel() * share)
    if count == 0 or values.numel() == 0:
        return
    positions = torch.randperm(x.numel(), generator=generator)[:count]
    flat = x.view(-1)
    flat[positions] = values.repeat(count // values.numel() + 1)[:count].to(x.dtype)


def neighbours(value: float, dtype: torch.dtype) -> list[float]:
    """`value` rounded to dtype and the representable values one ULP below and above."""
    center = torch.tensor([value], dtype=dtype)
    bits = center.view(_INT_OF[dtype]).to(torch.int64)
    out = []
    for step in (-1, 0, 1):
        # for positive values the bit pattern orders like the value
        moved = (bits + step if value > 0 else bits - step).to(_INT_OF[dtype]).view(dtype)
        out.append(float(moved.item()))
    return out


def boundary_values(dtype: torch.dtype, limit: float | None) -> torch.Tensor:
    """The limit and its ULP neighbours (both signs), +-0, subnormals, the largest finite."""
    info = torch.finfo(dtype)
    values = [0.0, -0.0, info.smallest_normal, -info.smallest_normal, info.max, -info.max]
    tiny = float(torch.tensor([info.smallest_normal], dtype=dtype).view(_INT_OF[dtype]).sub(1).view(dtype).item())
    smallest = float(torch.tensor([1], dtype=_INT_OF[dtype]).view(dtype).item())
    values += [tiny, -tiny, smallest, -smallest]  # the largest and the smallest subnormal
    if limit is not None:
        near = neighbours(limit, dtype)
        values += near + [-v for v in near]
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def _heavy_tail(tokens: int, cols: int, limit: float | None, spec: InputSpec, seed: int) -> torch.Tensor:
    """Student-t samples from the seeded CPU generator, scaled so that the clamp fraction of
    them exceed the limit (by their own empirical quantile) or to `spec.scale`."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((tokens, cols), generator=generator, dtype=torch.float64)
    chi2 = torch.randn((_HEAVY_TAIL_DOF, tokens, cols), generator=generator, dtype=torch.float64).pow(2).sum(0)
    t = z / torch.sqrt(chi2 / _HEAVY_TAIL_DOF)
    if spec.scale is not None:
        return t * spec.scale
    if limit is None or t.numel() == 0:
        return t
    quantile = torch.quantile(t.reshape(-1)[: 1 << 24], 1.0 - spec.clamp_fraction).item()
    return t * (limit / quantile)


def poison_bits(dtype: torch.dtype) -> int:
    """A signalling-NaN bit pattern no arithmetic produces: marks never-written output."""
    return _POISON_BITS[dtype]


def poisoned(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A tensor whose every element holds the poison pattern."""
    bits, width = poison_bits(dtype), 8 * dtype.itemsize
    signed = bits - (1 << width) if bits >= 1 << (width - 1) else bits
    return torch.full(shape, signed, dtype=_INT_OF[dtype], device=device).view(dtype)


def count_poison(output: torch.Tensor) -> int:
    """How many elements still hold the poison pattern."""
    if output.dtype not in _INT_OF:
        return 0
    marker = poisoned((1,), output.dtype, output.device).view(_INT_OF[output.dtype])
    return int(torch.count_nonzero(output.contiguous().view(_INT_OF[output.dtype]) == marker).item())


def as_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """The same values as `x`, laid out as the input view asks."""
    if view == "contiguous":
        return x
    padded = torch.full((x.shape[0], x.shape[1] + 2), float("nan"), dtype=x.dtype, device=x.device)
    padded[:, 1 : 1 + x.shape[1]] = x
    return padded[:, 1 : 1 + x.shape[1]]
