"""Backend `triton-fp8`: fused gated activation + per-token-group FP8 quantization.

x `[T, 2D]` -> (q `[T, D]` float8_e4m3fn, scales fp32 `[T, D/G]`), the contract of
`swiglu_check.quant` (DESIGN.md section 3). Each program takes one row and
`GROUPS_PER_PROG` groups of G columns: it computes the activation in fp32 (the shared
device function of the `triton` backend), the group absmax, the scale
`max(absmax, eps) / 448` (with UE8M0 rounded up to a power of two by exponent
arithmetic, exact), and q = clamp(y / scale, -448, 448) cast to e4m3.

Rounding choice: y is quantized straight from fp32; it is *not* rounded to the input
dtype first (engines differ here; the `gated-fp8` check judges against the exact
activation either way). The only roundings are the fp32 arithmetic, the scale division
and the e4m3 cast.

Interpreter: Triton 3.9's interpreter converts fp32 -> e4m3 wrongly (ties away from
zero, and a dropped carry turns -31.6 into -16). When the probe in `probe.py` finds the
cast inexact, the kernel rounds q onto the e4m3 grid itself with exact fp32/integer
arithmetic first (`EXACT_E4M3`, `rounding.py`), so the final cast has nothing left to
round. On a GPU the hardware conversion is used; a GPU test checks that both paths give
identical bytes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from swiglu_check.ops import OpSpec
from swiglu_check.quant import E4M3_MAX, Fp8Spec

from . import INTERPRETED, interpreter_errstate
from .activation import gated_activation
from .gated import check_input, kernel_switches
from .rounding import round_to_e4m3_grid

_I32_MAX = 2**31 - 1


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _gated_fp8_kernel(x_ptr, q_ptr, s_ptr, D, stride_x, stride_q, stride_s_row, stride_s_group,
                      alpha, beta, limit, eps,
                      ACT: tl.constexpr, CLAMP: tl.constexpr, POST_CLAMP: tl.constexpr,
                      INTERLEAVED: tl.constexpr, GROUP: tl.constexpr, GROUPS_PER_PROG: tl.constexpr,
                      UE8M0: tl.constexpr, EXACT_E4M3: tl.constexpr):
    # one flat grid, group blocks fastest: neighbouring programs stream through
    # consecutive memory (see the `triton` kernel)
    pid = tl.program_id(0)
    group_blocks = (D // GROUP + GROUPS_PER_PROG - 1) // GROUPS_PER_PROG  # not tl.cdiv (see below)
    row = (pid // group_blocks).to(tl.int64)  # int64: row * stride may exceed 2^31
    groups = (pid % group_blocks) * GROUPS_PER_PROG + tl.arange(0, GROUPS_PER_PROG)
    group_ok = groups < D // GROUP  # D is a multiple of GROUP: a valid group is all in range
    cols = groups[:, None] * GROUP + tl.arange(0, GROUP)[None, :]  # [GROUPS_PER_PROG, GROUP]
    mask = group_ok[:, None]
    x_row = x_ptr + row * stride_x
    if INTERLEAVED:
        pair = tl.arange(0, 2)
        x = tl.load(x_row + (2 * cols)[:, :, None] + pair[None, None, :], mask=mask[:, :, None], other=0.0)
        gate, up = tl.split(x)
    else:
        gate = tl.load(x_row + cols, mask=mask, other=0.0)
        up = tl.load(x_row + D + cols, mask=mask, other=0.0)
    y = gated_activation(gate, up, alpha, beta, limit, ACT, CLAMP, POST_CLAMP)

    # tl.reduce with our own combine function, not tl.max: tl.max's combine function is
    # decorated when triton is first imported, and if that happened before TRITON_INTERPRET
    # was set (torch.compile imports triton), the interpreter cannot call it
    scale = tl.maximum(tl.reduce(tl.abs(y), 1, _max), eps) / 448.0
    if UE8M0:
        # 2**ceil(log2(scale)): add a mantissa's worth of ones, keep the exponent (exact)
        bits = scale.to(tl.int32, bitcast=True)
        pow2 = ((bits + 0x7FFFFF) & 0x7F800000).to(tl.float32, bitcast=True)
        scale = tl.where(scale == scale, pow2, scale)  # NaN stays NaN
    q = y / scale[:, None]
    q = tl.minimum(tl.maximum(q, -448.0, propagate_nan=tl.PropagateNan.ALL), 448.0,
                   propagate_nan=tl.PropagateNan.ALL)
    if EXACT_E4M3:
        q = round_to_e4m3_grid(q)
    tl.store(q_ptr + row * stride_q + cols, q.to(q_ptr.dtype.element_ty), mask=mask)
    tl.store(s_ptr + row * stride_s_row + groups.to(tl.int64) * stride_s_group, scale, mask=group_ok)


def launch_config(groups: int, group_size: int) -> tuple[int, int]:
    """(GROUPS_PER_PROG, num_warps): about 1024 elements per program on a GPU (8 per
    thread at 4 warps), larger tiles under the interpreter (fewer Python-level programs)."""
    target = 4096 if INTERPRETED else 1024
    per_prog = max(1, min(triton.next_power_of_2(groups), target // group_size))
    if INTERPRETED:
        return per_prog, 1
    return per_prog, max(1, min(4, per_prog * group_size // 256))


def supports(spec: Fp8Spec) -> tuple[bool, str]:
    """Triton tiles need a power-of-two group size."""
    g = spec.group_size
    if g & (g - 1) or not 2 <= g <= 4096:
        return False, f"group size {g} is not a power of two in [2, 4096] (Triton tile size)"
    return True, ""


def gated_fp8(x: torch.Tensor, op: OpSpec, spec: Fp8Spec, *, _plant: str | None = None,
              _exact_e4m3: bool | None = None,
              _config: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scales) for `x`; scales are the `[T, D/G]` view (column-major: strides (1, T)).
    `_plant` and `_exact_e4m3` are for tests (see the module docstring), `_config`
    overrides (GROUPS_PER_PROG, num_warps) for the tuning script."""
    check_input(x)
    ok, why = supports(spec)
    if not ok:
        raise ValueError(why)
    if x.stride(-1) != 1:
        x = x.contiguous()
    tokens, width = x.shape[0], x.shape[1] // 2
    problem = spec.mismatch(width)
    if problem:
        raise ValueError(problem)
    groups = width // spec.group_size
    q = torch.empty((tokens, width), dtype=torch.float8_e4m3fn, device=x.device)
    if spec.column_major:
        scales = torch.empty((groups, tokens), dtype=torch.float32, device=x.device).t()
    else:
        scales = torch.empty((tokens, groups), dtype=torch.float32, device=x.device)
    if tokens == 0 or width == 0:
        return q, scales
    if _exact_e4m3 is None:
        from .probe import interpreter_e4m3_cast_is_exact

        _exact_e4m3 = INTERPRETED and not interpreter_e4m3_cast_is_exact()
    per_prog, num_warps = _config or launch_config(groups, spec.group_size)
    programs = tokens * triton.cdiv(groups, per_prog)
    if programs > _I32_MAX:
        raise ValueError(f"{tokens}x{width} needs {programs} programs, more than one launch grid holds")
    grid = (programs,)
    limit = float(op.limit) if op.limit is not None else 0.0
    with interpreter_errstate():
        _gated_fp8_kernel[grid](
            x, q, scales, width, x.stride(0), q.stride(0), scales.stride(0), scales.stride(1),
            float(op.alpha), float(op.beta), limit, float(spec.eps),
            GROUP=spec.group_size, GROUPS_PER_PROG=per_prog, UE8M0=spec.ue8m0,
            EXACT_E4M3=bool(_exact_e4m3), num_warps=num_warps, **kernel_switches(op, _plant),
        )
    return q, scales


assert E4M3_MAX == 448.0  # the kernel's literals
