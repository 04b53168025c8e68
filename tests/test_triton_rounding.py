"""The in-kernel grid rounding (`kernels/triton/rounding.py`) against torch's casts.

These helpers stand in for the interpreter's inexact conversions, so they must equal a
correct round-to-nearest-even conversion bit for bit, ties and carries included.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from swiglu_check.kernels.triton import interpreter_errstate  # noqa: E402
from swiglu_check.kernels.triton.rounding import round_to_bf16_grid, round_to_e4m3_grid  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@triton.jit
def _round_kernel(src_ptr, dst_ptr, n, TARGET: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(src_ptr + offs, mask=mask)
    if TARGET == 0:
        r = round_to_bf16_grid(v)
    else:
        r = round_to_e4m3_grid(v)
    tl.store(dst_ptr + offs, r, mask=mask)  # fp32 out: no conversion involved


def _rounded(values: torch.Tensor, target: int) -> torch.Tensor:
    src = values.to(DEVICE)
    out = torch.empty_like(src)
    with interpreter_errstate():
        block = triton.next_power_of_2(src.numel()) if src.device.type == "cpu" else 1024  # interpreter: one program
        _round_kernel[(triton.cdiv(src.numel(), block),)](src, out, src.numel(), TARGET=target, BLOCK=block)
    return out.cpu()


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def _all_values(dtype: torch.dtype, bits: int) -> torch.Tensor:
    """Every value of a small float format, widened to fp32 (NaNs dropped)."""
    codes = torch.arange(2**bits, dtype=torch.int32)
    view = codes.to(torch.uint8) if bits == 8 else codes.to(torch.int16)
    values = view.view(dtype).float()
    return values[~torch.isnan(values)]


def test_bf16_rounding_matches_torch_on_ties_carries_and_specials() -> None:
    grid = _all_values(torch.bfloat16, 16)
    grid = grid[torch.isfinite(grid)].unique()
    ties = (grid[1:].double() + grid[:-1].double()) / 2  # exactly representable in fp32
    random = torch.randn(2048, generator=torch.Generator().manual_seed(0)) * 100
    specials = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 3.3895314e38, -3.3895314e38, 1e-40])
    values = torch.cat([grid, ties.float(), random, specials])
    assert _same_bits(_rounded(values, 0), values.to(torch.bfloat16).float())
    nan = _rounded(torch.tensor([float("nan")]), 0)
    assert torch.isnan(nan).all()


def test_e4m3_rounding_matches_torch_on_every_value_and_midpoint() -> None:
    grid = _all_values(torch.float8_e4m3fn, 8).unique()
    mids = (grid[1:].double() + grid[:-1].double()) / 2
    near = torch.cat([mids * (1 + 2**-20), mids * (1 - 2**-20)])  # just off the ties
    random = (torch.randn(4096, generator=torch.Generator().manual_seed(1)) * 60).clamp(-448, 448)
    values = torch.cat([grid, mids.float(), near.float().clamp(-448, 448), random, torch.tensor([-0.0, 1e-6, -1e-6])])
    expected = values.to(torch.float8_e4m3fn).float()
    got = _rounded(values, 1)
    assert _same_bits(got, expected)
