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
) -> torch.Tensor:
    """The `[tokens, 2*width]` input of a gated-activation case."""
    if spec.distribution != "gaussian":
        raise InputError(f"unknown input distribution {spec.distribution!r}")
    x = gaussian(tokens, 2 * width, scale=resolve_scale(spec, limit), seed=seed, dtype=dtype, device=device)
    return as_view(x, spec.view)


def as_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """The same values as `x`, laid out as the input view asks."""
    if view == "contiguous":
        return x
    padded = torch.full((x.shape[0], x.shape[1] + 2), float("nan"), dtype=x.dtype, device=x.device)
    padded[:, 1 : 1 + x.shape[1]] = x
    return padded[:, 1 : 1 + x.shape[1]]
