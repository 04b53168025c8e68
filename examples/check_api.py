"""Check a gated-activation implementation from Python and print its verdicts.

Run:  python examples/check_api.py
"""

import torch

from swiglu_check import api
from swiglu_check.backends import Backend


def my_swiglu(x: torch.Tensor, op) -> torch.Tensor:
    """A hand-written clamped SwiGLU with fp32 math and one rounding (halves layout)."""
    d = x.shape[-1] // 2
    gate, up = x[..., :d].float(), x[..., d:].float()
    if op.limit is not None:
        gate, up = gate.clamp(max=op.limit), up.clamp(-op.limit, op.limit)
    return (gate * torch.sigmoid(op.alpha * gate) * (up + op.beta)).to(x.dtype)


report = api.check(
    Backend("my-swiglu", "gated", my_swiglu, check_supports=lambda op: (op.layout == "halves", "halves only")),
    op="deepseek-v4", limits=[7, 10, None], dtypes=["bf16", "fp16"], shapes=["64x512"], device="cpu",
)
for result in report.results:
    print(f"{result.verdict:<5} {result.case_id:<40} floor ratio {result.metrics['floor_ratio']:.3f}")
raise SystemExit(report.exit_code)
