"""Built-in torch backends of kind `gated`: `torch-eager` and `torch-compile`."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import sys

import torch

from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref

from . import Backend, register


def _eager(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    return ref.eager(x, op)


@functools.lru_cache(maxsize=None)
def _compiled(op: OpSpec):
    """One compiled graph per op (the limit and constants are baked in, like a model)."""

    def formula(x: torch.Tensor) -> torch.Tensor:
        return ref.fused(x, op)

    return torch.compile(formula, dynamic=False)


def _compile_call(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    return _compiled(op)(x)


def _compile_available() -> tuple[bool, str]:
    if sys.platform == "win32" and sys.version_info < (3, 12):
        return False, "torch.compile's Inductor backend is not supported on this platform"
    if importlib.util.find_spec("torch._inductor") is None:
        return False, "this torch build has no Inductor (torch._inductor)"
    if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")) and not torch.cuda.is_available():
        return False, "no C++ compiler found for Inductor's CPU backend and no CUDA device"
    return True, ""


register(
    Backend(
        name="torch-eager",
        kind="gated",
        call=_eager,
        description="plain torch ops, every op in the input dtype (like an nn.Module)",
    )
)

register(
    Backend(
        name="torch-compile",
        kind="gated",
        call=_compile_call,
        description="torch.compile (Inductor) of the fp32-math formula, one rounding",
        check_available=_compile_available,
    )
)
