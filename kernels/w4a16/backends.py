"""Registration of the W4A16 backends. Triton is imported only when a backend runs.

Kind `linear-w4a16` (`call(x, weight) -> y`, kinds/linear_w4a16.py):
- `w4a16-nvfp4`, `w4a16-mxfp4`: the Triton GEMM (kernels/w4a16/gemm.py), one format each;
- `torch-w4a16`: the reference path, dequantize then an fp32 matmul rounded once
  (runs everywhere, both formats).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from swiglu_check.backends import Backend, register
from swiglu_check.references import fp4

ACT_DTYPES = ("bf16", "fp16")


def triton_available() -> tuple[bool, str]:
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed"
    if not torch.cuda.is_available():
        return True, "Triton interpreter (no CUDA device)"
    major, _minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, "needs a GPU of compute capability 8.0 or newer (bf16 MMA)"
    return True, ""


def gemm_call(**options: Any):
    """`call(x, weight)` running the Triton GEMM with fixed keyword options (e.g. a
    planted bug for the tool's tests)."""

    def call(x: torch.Tensor, weight: fp4.FP4Weight) -> torch.Tensor:
        from .gemm import w4a16_matmul

        return w4a16_matmul(x, weight, **options)

    return call


def torch_linear(x: torch.Tensor, weight: fp4.FP4Weight) -> torch.Tensor:
    """Reference: dequantize to fp32, fp32 matmul, one rounding to x's dtype."""
    w = fp4.dequantize(weight, torch.float32)
    return torch.matmul(x.to(torch.float32), w.T).to(x.dtype)


def triton_gemm_backend(name: str, formats: tuple[str, ...], description: str, **options: Any) -> Backend:
    return Backend(
        name=name,
        kind="linear-w4a16",
        call=gemm_call(**options),
        description=description,
        dtypes=ACT_DTYPES,
        check_available=triton_available,
        interpreted_on=("cpu",),
        extra={"formats": formats, "bench": not options},
    )


for _fmt in fp4.FORMATS:
    register(triton_gemm_backend(
        f"w4a16-{_fmt}", (_fmt,),
        f"Triton W4A16 GEMM, {_fmt.upper()} weights dequantized in registers, fp32 accumulation",
    ))

register(Backend(
    name="torch-w4a16",
    kind="linear-w4a16",
    call=torch_linear,
    description="reference: dequantize FP4 weights, fp32 matmul, one rounding",
    dtypes=ACT_DTYPES,
    extra={"formats": fp4.FORMATS},
))
