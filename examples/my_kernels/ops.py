"""Two hand-written clamped SwiGLU implementations, one right and one with a real bug.

A plain function `fn(x, *, limit, ...) -> y` is all swiglu-check needs: it passes the
clamp limit (None for unclamped ops) and, when the function asks for them by name, the
other op fields (activation, alpha, beta, layout, clamp).
"""

import torch


def swiglu_fp32_math(x: torch.Tensor, *, limit: float | None, alpha: float = 1.0, beta: float = 0.0) -> torch.Tensor:
    """Halves layout, fp32 math, one final rounding (what a fused kernel does)."""
    d = x.shape[-1] // 2
    gate, up = x[..., :d].float(), x[..., d:].float()
    if limit is not None:
        gate = gate.clamp(max=limit)
        up = up.clamp(-limit, limit)
    return (gate * torch.sigmoid(alpha * gate) * (up + beta)).to(x.dtype)


def swiglu_forgets_clamp(x: torch.Tensor, *, limit: float | None) -> torch.Tensor:
    """The bug of the seeds: the limit reaches the function but is never applied."""
    return swiglu_fp32_math(x, limit=None)
