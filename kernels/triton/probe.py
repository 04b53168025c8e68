"""Measure how Triton's CPU interpreter converts fp32 stores, instead of assuming it.

DESIGN.md section 5: Triton 3.9's interpreter converts fp32 -> bf16 by truncation
(toward zero), not round-to-nearest-even; fp16 is converted correctly. Its fp32 -> e4m3
conversion (measured with this probe, Triton 3.9) rounds ties away from zero and, when
rounding carries into the exponent, can drop the carry (-31.6 becomes -16, not -32).

Each probe runs a tiny store kernel through the interpreter once and compares the bits
with torch's round-to-nearest-even cast, so the kernels switch their in-kernel rounding
(`rounding.py`) on only where an interpreter version needs it.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from . import INTERPRETED

_PROBE_SIZE = 4096


@triton.jit
def _store_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    value = tl.load(src_ptr + offs, mask=mask)
    tl.store(dst_ptr + offs, value.to(dst_ptr.dtype.element_ty), mask=mask)


def probe_values(scale: float = 3.0) -> torch.Tensor:
    """Seeded Gaussian fp32 values: about half of them are not halfway cases of bf16."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(_PROBE_SIZE, generator=generator, dtype=torch.float32) * scale


def stored(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What the kernel's `tl.store` of fp32 `values` into a `dtype` tensor writes."""
    out = torch.empty(values.shape, dtype=dtype, device=values.device)
    _store_kernel[(1,)](values, out, values.numel(), BLOCK=triton.next_power_of_2(values.numel()))
    return out


@functools.lru_cache(maxsize=None)
def interpreter_store_rounding(dtype: torch.dtype) -> str:
    """How the interpreter rounds fp32 values stored to `dtype`: "nearest-even",
    "toward-zero" (bf16 only: the dropped bits cleared) or "inexact" (neither)."""
    if not INTERPRETED or dtype == torch.float32:
        return "nearest-even"
    values = probe_values()
    got = stored(values, dtype)
    if torch.equal(got.view(torch.int16), values.to(dtype).view(torch.int16)):
        return "nearest-even"
    if dtype == torch.bfloat16:
        truncated = (values.view(torch.int32) & -65536).view(torch.float32).to(dtype)  # exact
        if torch.equal(got.view(torch.int16), truncated.view(torch.int16)):
            return "toward-zero"
    return "inexact"


@functools.lru_cache(maxsize=None)
def interpreter_e4m3_cast_is_exact() -> bool:
    """Whether the interpreter's fp32 -> float8_e4m3fn conversion matches torch's
    round-to-nearest-even cast on values within the e4m3 range."""
    if not INTERPRETED:
        return True
    values = probe_values(120.0).clamp(-448.0, 448.0)
    got = stored(values, torch.float8_e4m3fn)
    return torch.equal(got.view(torch.uint8), values.to(torch.float8_e4m3fn).view(torch.uint8))
