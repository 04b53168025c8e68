"""Triton kernels under test: the fused gated activation and the fused activation +
FP8 per-token-group quantization.

Without a CUDA device Triton kernels run through Triton's interpreter on the CPU. The
interpreter is chosen when a kernel is *decorated*, so `TRITON_INTERPRET=1` must be set
before the kernel modules import triton: importing this package does that when torch
sees no GPU (an explicit `TRITON_INTERPRET` setting is left as the user set it).

If triton was imported *before* that (torch.compile does so), the helpers of
`triton.language`'s standard library that are themselves `@triton.jit` functions
(`tl.max`, `tl.cdiv`, `tl.sigmoid`, ...) were compiled for the GPU and the interpreter
cannot call them. The kernels here therefore use only builtins (`tl.reduce` with their
own combine function, integer arithmetic for ceil-division); a test guards this.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

INTERPRETED: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when every kernel of this package runs through Triton's CPU interpreter."""


def interpreter_errstate() -> contextlib.AbstractContextManager:
    """The interpreter runs kernels in numpy, where exp(large) overflowing to inf (an
    intended, correct step of the sigmoid) would print a RuntimeWarning; silence it."""
    return np.errstate(over="ignore") if INTERPRETED else contextlib.nullcontext()
