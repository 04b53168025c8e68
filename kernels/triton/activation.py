"""The gated activation as a Triton device function, shared by both kernels.

All math is fp32; the caller loads gate and up in any float dtype, and rounds the result
once (to the output dtype, or to FP8 after scaling). The op's switches are compile-time
constants so an unclamped or silu-only kernel pays nothing for the other variants.
"""

from __future__ import annotations

import triton
import triton.language as tl

ACT_SILU = 0
ACT_GELU = 1
ACT_GELU_TANH = 2
ACTIVATION_CODES = {"silu": ACT_SILU, "gelu": ACT_GELU, "gelu_tanh": ACT_GELU_TANH}


@triton.jit
def gated_activation(gate, up, alpha, beta, limit,
                     ACT: tl.constexpr, CLAMP: tl.constexpr, POST_CLAMP: tl.constexpr):
    """act(gate) * (up + beta) in fp32, with the op's clamp (DESIGN.md section 2).

    act(g) = g * cdf(alpha * g) with cdf = sigmoid (silu), Phi (gelu) or the tanh
    approximation of Phi (gelu_tanh, written as sigmoid(2u): 0.5 * (1 + tanh(u)) ==
    sigmoid(2u) exactly, so no tanh is needed). Clamps propagate NaN like torch.clamp.
    """
    g = gate.to(tl.float32)
    u = up.to(tl.float32)
    if CLAMP:
        u = tl.minimum(tl.maximum(u, -limit, propagate_nan=tl.PropagateNan.ALL), limit,
                       propagate_nan=tl.PropagateNan.ALL)
        if not POST_CLAMP:
            g = tl.minimum(g, limit, propagate_nan=tl.PropagateNan.ALL)
    z = alpha * g
    # constants: 1/sqrt(2) (erf-GELU); 2*sqrt(2/pi) and 0.044715 (tanh-GELU as a sigmoid)
    if ACT == 0:
        a = g / (1.0 + tl.exp(-z))
    elif ACT == 1:
        a = 0.5 * g * (1.0 + tl.erf(z * 0.7071067811865476))
    else:
        inner = 1.5957691216057308 * (z + 0.044715 * z * z * z)
        a = g / (1.0 + tl.exp(-inner))
    if CLAMP:
        if POST_CLAMP:
            a = tl.minimum(a, limit, propagate_nan=tl.PropagateNan.ALL)
    return a * (u + beta)
