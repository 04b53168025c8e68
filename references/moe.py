"""MoE expert MLP references with the gated activation between the two GEMMs
(DESIGN.md section 3, "The MoE expert MLP").

For each token t and each of its top-k experts e (router weight w):

    h   = x[t] @ W13[e]^T            [2I], gate and up split per the op's layout
    act = gated(h, op)               the clamped SwiGLU of the op spec (references/gated.py)
    y[t] += w * (act @ W2[e]^T)      [H]

- `exact`: float64 on the dequantized weights (x upcast exactly); `apply_clamp=False`
  gives what a backend that never received the limit computes.
- `recipe`: what an unfused engine computes: h rounded to x's dtype (the GEMM1 output),
  the activation in fp32 rounded to x's dtype (the GEMM2 input), exact GEMM2 and
  weighted sum, one final rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from swiglu_check.ops import OpSpec

from . import fp4
from . import gated as ref


@dataclass(frozen=True)
class Routing:
    """Top-k routing: expert ids `[T, k]` (int64) and their weights `[T, k]` (float32)."""

    ids: torch.Tensor
    weights: torch.Tensor

    @property
    def top_k(self) -> int:
        return self.ids.shape[1]


def route(logits: torch.Tensor, top_k: int, *, renormalize: bool = True) -> Routing:
    """Softmax over experts in fp32, the top-k, their weights (renormalized to sum 1)."""
    if not 1 <= top_k <= logits.shape[-1]:
        raise ValueError(f"top-k must be in [1, {logits.shape[-1]}], got {top_k}")
    probs = torch.softmax(logits.to(torch.float32), dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return Routing(ids.to(torch.int64), weights.to(torch.float32))


@dataclass
class ExpertPass:
    """One expert's share of a batch: the routed (token, slot) pairs and its float64 h."""

    expert: int
    tokens: torch.Tensor  # [n] token index of each routed pair
    slots: torch.Tensor  # [n] which of the token's k choices
    h: torch.Tensor  # [n, 2I] float64 GEMM1 output (exact on the dequantized W13)
    w2: torch.Tensor | None  # [H, I] float64 dequantized W2 of this expert (None: not asked for)


def expert_passes(x: torch.Tensor, w13: fp4.FP4Weight, w2: fp4.FP4Weight | None,
                  routing: Routing) -> Iterator[ExpertPass]:
    """Each expert with routed tokens, with its exact GEMM1 output (one expert's weights
    are dequantized at a time, to bound memory)."""
    x64 = x.to(torch.float64)
    for expert in torch.unique(routing.ids).tolist():
        tokens, slots = (routing.ids == expert).nonzero(as_tuple=True)
        w13_e = fp4.dequantize(w13[expert])
        h = x64[tokens] @ w13_e.T
        del w13_e
        yield ExpertPass(expert, tokens, slots, h, None if w2 is None else fp4.dequantize(w2[expert]))


def combine(y: torch.Tensor, part: ExpertPass, out: torch.Tensor, routing: Routing) -> None:
    """y[token] += router weight * out, in y's dtype."""
    weight = routing.weights[part.tokens, part.slots].to(y.dtype)
    y.index_add_(0, part.tokens, out.to(y.dtype) * weight[:, None])


def exact(x: torch.Tensor, w13: fp4.FP4Weight, w2: fp4.FP4Weight, routing: Routing, op: OpSpec,
          *, apply_clamp: bool = True) -> torch.Tensor:
    """The layer in float64 on the dequantized weights, `[T, H]`."""
    y = torch.zeros((x.shape[0], w2.shape[-2]), dtype=torch.float64, device=x.device)
    for part in expert_passes(x, w13, w2, routing):
        act = ref.exact(part.h, op, apply_clamp=apply_clamp)
        combine(y, part, act @ part.w2.T, routing)
    return y


def recipe(x: torch.Tensor, w13: fp4.FP4Weight, w2: fp4.FP4Weight, routing: Routing, op: OpSpec) -> torch.Tensor:
    """An unfused engine's rounding: h and the activation stored in x's dtype."""
    y = torch.zeros((x.shape[0], w2.shape[-2]), dtype=torch.float64, device=x.device)
    for part in expert_passes(x, w13, w2, routing):
        act = ref.fused(part.h.to(x.dtype), op).to(torch.float64)
        combine(y, part, act @ part.w2.T, routing)
    return y.to(x.dtype)
