"""Reference implementations of the gated activation (DESIGN.md sections 2 and 3).

- `exact`: the formula in float64 on inputs upcast exactly; everything is judged
  against it.
- Recipes that emulate how real kernels round, each returning the input dtype:
  `fused` (fp32 math, one final rounding), `round-act` (activation rounded to the
  dtype, product in fp32, rounded again: a packed CUDA kernel), `eager` (every op in
  the dtype, like a plain nn.Module).

All functions take the op spec as the contract; none of them reads global state.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from swiglu_check.ops import OpSpec

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_COEFF = 0.044715


def split_gate_up(x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `[..., 2D]` into gate and up `[..., D]` views per the layout."""
    if x.shape[-1] % 2:
        raise ValueError(f"last dimension must be even, got {x.shape[-1]}")
    if layout == "halves":
        d = x.shape[-1] // 2
        return x[..., :d], x[..., d:]
    if layout == "interleaved":
        return x[..., 0::2], x[..., 1::2]
    raise ValueError(f"unknown layout {layout!r}")


def activation(g: torch.Tensor, name: str, alpha: float = 1.0) -> torch.Tensor:
    """act(g) evaluated in g's dtype with torch ops (no intermediate promotion)."""
    if name == "silu":
        if alpha == 1.0:
            return torch.nn.functional.silu(g)
        return g * torch.sigmoid(g * alpha)
    if name == "gelu":
        return torch.nn.functional.gelu(g if alpha == 1.0 else g * alpha, approximate="none") / (
            1.0 if alpha == 1.0 else alpha
        )
    if name == "gelu_tanh":
        return torch.nn.functional.gelu(g if alpha == 1.0 else g * alpha, approximate="tanh") / (
            1.0 if alpha == 1.0 else alpha
        )
    raise ValueError(f"unknown activation {name!r}")


def _exact_activation(g: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """act(g) in float64 written out from the definitions (no library shortcuts)."""
    if name == "silu":
        return g * torch.sigmoid(alpha * g)
    if name == "gelu":
        # gelu(g) = g * Phi(g); with alpha: g * Phi(alpha * g)
        return g * 0.5 * (1.0 + torch.erf(alpha * g / math.sqrt(2.0)))
    if name == "gelu_tanh":
        z = alpha * g
        inner = _SQRT_2_OVER_PI * (z + _GELU_TANH_COEFF * z * z * z)
        return g * 0.5 * (1.0 + torch.tanh(inner))
    raise ValueError(f"unknown activation {name!r}")


def _apply(
    x: torch.Tensor,
    op: OpSpec,
    act: Callable[[torch.Tensor], torch.Tensor],
    *,
    apply_clamp: bool = True,
) -> torch.Tensor:
    """The formula with the given activation, in x's dtype, every op rounding to it."""
    gate, up = split_gate_up(x, op.layout)
    limit = op.limit if apply_clamp else None
    if limit is not None:
        up = up.clamp(-limit, limit)
        if op.clamp == "pre":
            gate = gate.clamp(max=limit)
    a = act(gate)
    if limit is not None and op.clamp == "post":
        a = a.clamp(max=limit)
    if op.beta != 0.0:
        up = up + op.beta
    return a * up


def exact(x: torch.Tensor, op: OpSpec, *, apply_clamp: bool = True) -> torch.Tensor:
    """The exact result in float64 (x is upcast exactly). `apply_clamp=False` drops the
    clamp, which is what a backend that never received the limit computes."""
    x64 = x.to(torch.float64)
    return _apply(x64, op, lambda g: _exact_activation(g, op.activation, op.alpha), apply_clamp=apply_clamp)


def fused(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    """fp32 math, one final rounding to x's dtype: what a fused kernel does."""
    x32 = x.to(torch.float32)
    return _apply(x32, op, lambda g: activation(g, op.activation, op.alpha)).to(x.dtype)


def round_act(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    """Activation in fp32 rounded to the dtype, then the product in fp32, rounded again
    (what a packed CUDA kernel that stores act before multiplying does)."""
    dtype = x.dtype

    def rounded_act(g: torch.Tensor) -> torch.Tensor:
        return activation(g, op.activation, op.alpha).to(dtype).to(torch.float32)

    return _apply(x.to(torch.float32), op, rounded_act).to(dtype)


def eager(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    """Every op in x's dtype, like a plain nn.Module."""
    return _apply(x, op, lambda g: activation(g, op.activation, op.alpha))


RECIPES: dict[str, Callable[[torch.Tensor, OpSpec], torch.Tensor]] = {
    "fused": fused,
    "round-act": round_act,
    "eager": eager,
}
