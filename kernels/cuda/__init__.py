"""The CUDA C++ gated-activation kernel, as torch operators built on first use.

    from swiglu_check.kernels import cuda
    y = cuda.act_and_mul(x, op)                  # builds once, then torch.ops.swiglu_check.act_and_mul
    cuda.act_and_mul(x, op, out=y)               # the out-variant
    torch.ops.swiglu_check.act_and_mul(x, "silu", 1.0, 0.0, 10.0, "halves", "pre")

Sources: `act_and_mul.cuh` (the kernel template, pure CUDA), `kernels_*.cu` (every
instantiation, one file per dtype), `binding.cpp` (the operators and their checks),
`build.py` (the cached build).
"""

from __future__ import annotations

import torch

from swiglu_check.ops import OpSpec

from .build import BuildError, ensure_loaded, failure, toolchain_problem

# Planted bugs of `act_and_mul_variant`, for the tests: a kernel that ignores the clamp
# limit (the clamp template switched off), exact GELU where tanh GELU was asked, a clamp
# written with fminf/fmaxf (hides NaN), and a kernel that assumes contiguous rows.
FAULTS = ("none", "clamp_off", "gelu_erf", "fminf_clamp", "ignore_row_stride")

__all__ = ["FAULTS", "BuildError", "act_and_mul", "act_and_mul_variant", "availability", "ensure_loaded"]


def _args(op: OpSpec) -> tuple:
    return (op.activation, float(op.alpha), float(op.beta), op.limit, op.layout, op.clamp)


def act_and_mul(x: torch.Tensor, op: OpSpec, out: torch.Tensor | None = None) -> torch.Tensor:
    """`op` applied to x `[..., 2D]` -> `[..., D]` by the CUDA kernel (into `out` if given)."""
    if out is None:
        return _functional()(x, *_args(op))
    ensure_loaded()
    return torch.ops.swiglu_check.act_and_mul.out(x, *_args(op), out=out)


_functional_op = None


def _functional():
    """The resolved operator overload, looked up once: a bench of small shapes is bound by
    the host's time per call, and the `torch.ops` attribute lookups are part of it."""
    global _functional_op
    if _functional_op is None:
        ensure_loaded()
        _functional_op = torch.ops.swiglu_check.act_and_mul.default
    return _functional_op


def act_and_mul_variant(x: torch.Tensor, op: OpSpec, *, max_blocks: int = 0, items_per_block: int = 0,
                        fault: str = "none", max_threads: int = 0, math: str = "default",
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """The same kernel with a chosen launch configuration or a planted fault (see FAULTS);
    for tuning and tests.

    `items_per_block`: 16-byte vectors (or elements, on the scalar path) of a row per block
    (0: the default plan; a huge value: one block per row). `max_blocks`: blocks along the
    rows (0: one per row; > 0: at most that many, each looping over rows; < 0: a persistent
    grid). `max_threads`: threads per block at most (0: one per work item, up to 512), so
    each thread takes several items. `math`: the silu arithmetic, "default" (what
    `act_and_mul` uses: __expf and __fdividef for fp16/bf16 outputs, expf and an IEEE
    division for fp32), "fast" (__expf/__fdividef for every dtype) or "precise" (never)."""
    ensure_loaded()
    if out is None:
        out = x.new_empty((*x.shape[:-1], x.shape[-1] // 2))
    return torch.ops.swiglu_check._act_and_mul_variant(x, *_args(op), int(max_blocks), int(items_per_block), fault,
                                                       int(max_threads), str(math), out=out)


def availability() -> tuple[bool, str]:
    """(ok, why not) without building: the toolchain, or an earlier failed build."""
    problem = toolchain_problem()
    if problem:
        return False, problem
    failed = failure()
    if failed:
        return False, failed
    return True, ""
