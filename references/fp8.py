"""The exact FP8 per-token-group quantizer (the contract in `swiglu_check.quant`).

`quantize` takes the exact activation (float64) and quantizes it the ideal way: the
scale from the exact group absmax (rounded once to fp32, or exactly to a power of two
with UE8M0), and q = the exact quotient clamped to +-448 and rounded once, to nearest
even, onto the e4m3 grid. Its error against the exact activation is the floor a real
kernel is judged against; torch's own float8 cast is not used for the rounding (it
goes through fp32, a second rounding).
"""

from __future__ import annotations

import torch

from swiglu_check.quant import E4M3_MAX, Fp8Spec

E4M3_MIN_NORMAL = 2.0**-6
E4M3_SUBNORMAL_STEP = 2.0**-9
E4M3_MANTISSA_BITS = 3


def round_to_e4m3_grid(v: torch.Tensor) -> torch.Tensor:
    """float64 values with |v| <= 448 rounded to the nearest e4m3 value (ties to even),
    still as float64. NaN stays NaN."""
    mantissa, exponent = torch.frexp(v)  # v = mantissa * 2**exponent, |mantissa| in [0.5, 1)
    del mantissa
    # the spacing of e4m3 values around v: 2**(e - 3) for normals, 2**-9 below 2**-6
    step = torch.ldexp(torch.ones_like(v), exponent.to(v.dtype) - 1 - E4M3_MANTISSA_BITS)
    step = torch.where(v.abs() < E4M3_MIN_NORMAL, torch.full_like(v, E4M3_SUBNORMAL_STEP), step)
    return torch.round(v / step) * step  # torch.round: half to even; v / step is exact


def group_scales(y: torch.Tensor, spec: Fp8Spec) -> torch.Tensor:
    """The exact quantizer's fp32 scales `[T, D/G]` for float64 `y` `[T, D]`."""
    tokens, width = y.shape
    absmax = y.reshape(tokens, width // spec.group_size, spec.group_size).abs().amax(dim=-1)
    scale = absmax.clamp(min=spec.eps) / E4M3_MAX  # float64; NaN stays NaN
    if spec.ue8m0:
        mantissa, exponent = torch.frexp(scale)  # scale = m * 2**e, m in [0.5, 1)
        exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)  # exact powers of two stay
        scale = torch.where(torch.isfinite(scale), torch.ldexp(torch.ones_like(scale), exponent.to(scale.dtype)), scale)
    return scale.to(torch.float32)


def quantize(y: torch.Tensor, spec: Fp8Spec) -> tuple[torch.Tensor, torch.Tensor]:
    """(q float8_e4m3fn `[T, D]`, scales fp32 `[T, D/G]`) of float64 `y`, exactly."""
    scales = group_scales(y, spec)
    expanded = scales.to(torch.float64).repeat_interleave(spec.group_size, dim=1)
    q = round_to_e4m3_grid((y / expanded).clamp(-E4M3_MAX, E4M3_MAX))
    # every value is now on the e4m3 grid, so this cast does not round
    return q.to(torch.float32).to(torch.float8_e4m3fn), scales


def dequantize(q: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """q * scale in float64 (exact: both factors are short floats)."""
    return q.to(torch.float32).to(torch.float64) * scales.to(torch.float64).repeat_interleave(group_size, dim=1)


def e4m3_codes(q: torch.Tensor) -> torch.Tensor:
    """Signed integer codes of e4m3 values: adjacent values differ by 1, +0 and -0 are 0."""
    bits = q.view(torch.uint8).to(torch.int16)
    magnitude = bits & 0x7F
    return torch.where(bits >= 0x80, -magnitude, magnitude)
