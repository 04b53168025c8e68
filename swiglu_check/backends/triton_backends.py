"""Built-in Triton backends: `triton` (kind `gated`) and `triton-fp8` (kind `gated-fp8`).

Triton is imported lazily (in the availability check and the calls), so `list` works
where Triton is missing and says why. Without a CUDA device the kernels run through
Triton's CPU interpreter (`swiglu_check.kernels.triton` sets `TRITON_INTERPRET=1` before
triton is imported); their rows are then marked as interpreted.

The interpreter's fp32 -> bf16 stores truncate and its fp32 -> e4m3 conversion is
wrong (DESIGN.md section 5, `kernels/triton/probe.py`). Where a probe finds that, the
kernels round onto the target grid themselves before the store (exact integer
arithmetic, checked bit-identical to the GPU's conversion by GPU tests), so interpreted
rows carry the numbers a GPU produces and are judged with the usual floor and threshold.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import torch

from swiglu_check.ops import OpSpec
from swiglu_check.quant import Fp8Spec

from . import Backend, register


def _interpreted() -> bool:
    """Whether the kernels will run through the interpreter here (no side effects)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1" or not torch.cuda.is_available()


def _kernels(module: str) -> Any:
    return importlib.import_module(f"swiglu_check.kernels.triton.{module}")


def _available() -> tuple[bool, str]:
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (pip install triton)"
    if os.environ.get("TRITON_INTERPRET") == "0" and not torch.cuda.is_available():
        return False, "no CUDA GPU, and TRITON_INTERPRET=0 forbids Triton's CPU interpreter"
    try:
        _kernels("gated")
        _kernels("gated_fp8")
    except Exception as exc:  # report why, never crash `list`
        return False, f"the Triton kernels failed to load: {type(exc).__name__}: {exc}"
    return True, ""


def _gated(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    return _kernels("gated").gated(x, op)


def _gated_fp8(x: torch.Tensor, op: OpSpec, spec: Fp8Spec) -> tuple[torch.Tensor, torch.Tensor]:
    return _kernels("gated_fp8").gated_fp8(x, op, spec)


def _fp8_supports(spec: Fp8Spec) -> tuple[bool, str]:
    return _kernels("gated_fp8").supports(spec)


INTERPRETED_ON: tuple[str, ...] = ("cpu",) if _interpreted() else ()
DEVICES: tuple[str, ...] = ("cpu",) if _interpreted() else ("cuda",)
_WHERE = (" (Triton interpreter on CPU; bf16 and e4m3 rounded in-kernel where the interpreter's"
          " casts are inexact)" if _interpreted() else "")

register(
    Backend(
        name="triton",
        kind="gated",
        call=_gated,
        description=f"fused Triton kernel: fp32 math, one rounding{_WHERE}",
        devices=DEVICES,
        check_available=_available,
        interpreted_on=INTERPRETED_ON,
    )
)

register(
    Backend(
        name="triton-fp8",
        kind="gated-fp8",
        call=_gated_fp8,
        description=f"fused Triton activation + per-token-group FP8 (e4m3) quantization{_WHERE}",
        devices=DEVICES,
        check_available=_available,
        interpreted_on=INTERPRETED_ON,
        extra={"supports_fp8": _fp8_supports},
    )
)
