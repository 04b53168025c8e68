"""Registration of the W4A16 backends. Triton is imported only when a backend runs.

Kind `linear-w4a16` (`call(x, weight) -> y`, kinds/linear_w4a16.py):
- `w4a16-nvfp4`, `w4a16-mxfp4`: the Triton GEMM (kernels/w4a16/gemm.py), one format each;
- `w4a16-nvfp4-cuda`, `w4a16-mxfp4-cuda`: the CUDA C++ GEMM (kernels/w4a16/cuda_gemm.py),
  built on first use like the `cuda` gated backend; it reads each weight in its tiled
  layout, made from the weight on the first call and kept while the weight lives unchanged
  (cuda_gemm.cached_tiled_layout), as an engine repacks weights at load;
- `torch-w4a16`: the reference path, dequantize then an fp32 matmul rounded once
  (runs everywhere, both formats).

Kind `moe-w4a16` (`call(x, w13, w2, topk_weights, topk_ids, op, *, limit) -> y`,
kinds/moe_w4a16.py):
- `moe-w4a16`: the Triton expert MLP with the activation fused into GEMM1's epilogue
  (kernels/w4a16/moe.py), both formats;
- `torch-moe-w4a16`: the reference path, dequantized weights and every step in fp32,
  one rounding (runs everywhere).
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


def _triton_matmul(x: torch.Tensor, weight: fp4.FP4Weight, **options: Any) -> torch.Tensor:
    from .gemm import w4a16_matmul

    return w4a16_matmul(x, weight, **options)


def _cuda_matmul(x: torch.Tensor, weight: fp4.FP4Weight, **options: Any) -> torch.Tensor:
    from .cuda_gemm import cuda_w4a16_matmul

    return cuda_w4a16_matmul(x, weight, **options)


def torch_linear(x: torch.Tensor, weight: fp4.FP4Weight) -> torch.Tensor:
    """Reference: dequantize to fp32, fp32 matmul, one rounding to x's dtype."""
    w = fp4.dequantize(weight, torch.float32)
    return torch.matmul(x.to(torch.float32), w.T).to(x.dtype)


def cuda_available() -> tuple[bool, str]:
    from .cuda_gemm import availability

    return availability()


# implementation -> (matmul, availability, devices, interpreted on)
IMPLEMENTATIONS = {
    "triton": (_triton_matmul, triton_available, ("cpu", "cuda"), ("cpu",)),
    "cuda": (_cuda_matmul, cuda_available, ("cuda",), ()),
}


def gemm_backend(name: str, formats: tuple[str, ...], description: str, implementation: str = "triton",
                 **options: Any) -> Backend:
    """A linear-w4a16 backend running one GEMM implementation with fixed keyword options
    (e.g. a planted bug for the tool's tests; such backends stay out of `bench`)."""
    matmul, available, devices, interpreted_on = IMPLEMENTATIONS[implementation]

    def call(x: torch.Tensor, weight: fp4.FP4Weight) -> torch.Tensor:
        return matmul(x, weight, **options)

    return Backend(
        name=name,
        kind="linear-w4a16",
        call=call,
        description=description,
        dtypes=ACT_DTYPES,
        devices=devices,
        check_available=available,
        interpreted_on=interpreted_on,
        extra={"formats": formats, "bench": not options},
    )


for _fmt in fp4.FORMATS:
    register(gemm_backend(
        f"w4a16-{_fmt}", (_fmt,),
        f"Triton W4A16 GEMM, {_fmt.upper()} weights dequantized in registers, fp32 accumulation",
    ))
    register(gemm_backend(
        f"w4a16-{_fmt}-cuda", (_fmt,),
        f"CUDA C++ W4A16 GEMM (mma.sync), {_fmt.upper()} weights dequantized in registers, fp32 accumulation;"
        " weights repacked once into its tiled layout (cached per weight)",
        implementation="cuda",
    ))

register(Backend(
    name="torch-w4a16",
    kind="linear-w4a16",
    call=torch_linear,
    description="reference: dequantize FP4 weights, fp32 matmul, one rounding",
    dtypes=ACT_DTYPES,
    extra={"formats": fp4.FORMATS},
))


def moe_call(x: torch.Tensor, w13: fp4.FP4Weight, w2: fp4.FP4Weight, topk_weights: torch.Tensor,
             topk_ids: torch.Tensor, op: Any, *, limit: float | None, **options: Any) -> torch.Tensor:
    """The Triton MoE layer (imported on first use)."""
    from .moe import moe_w4a16

    return moe_w4a16(x, w13, w2, topk_weights, topk_ids, op, limit=limit, **options)


def torch_moe(x: torch.Tensor, w13: fp4.FP4Weight, w2: fp4.FP4Weight, topk_weights: torch.Tensor,
              topk_ids: torch.Tensor, op: Any, *, limit: float | None) -> torch.Tensor:
    """Reference: per expert, fp32 GEMMs on the dequantized weights and the fp32 gated
    activation (references/gated.py), router-weighted sum in fp32, one rounding."""
    from swiglu_check.references import gated as ref

    if op.limit is not None:
        raise ValueError("pass the clamp limit as `limit=` only (op.limit must be None)")
    spec = op.with_limit(limit)
    x32 = x.to(torch.float32)
    y = torch.zeros((x.shape[0], w2.shape[-2]), dtype=torch.float32, device=x.device)
    for expert in torch.unique(topk_ids).tolist():
        tokens, slots = (topk_ids == expert).nonzero(as_tuple=True)
        h = x32[tokens] @ fp4.dequantize(w13[expert], torch.float32).T
        act = ref.fused(h, spec)  # fp32 in, fp32 out: no rounding
        out = act @ fp4.dequantize(w2[expert], torch.float32).T
        y.index_add_(0, tokens, out * topk_weights[tokens, slots][:, None].to(torch.float32))
    return y.to(x.dtype)


def moe_cuda_available() -> tuple[bool, str]:
    """The CUDA routed-rows path needs Triton (activation and sum kernels) and the CUDA GEMM."""
    for check in (triton_available, cuda_available):
        ok, why = check()
        if not ok:
            return ok, why
    return True, ""


def moe_backend(name: str, description: str, gemm: str) -> Backend:
    """A moe-w4a16 backend whose GEMMs run on `gemm` (moe.GEMMS: auto, triton or cuda)."""
    def call(*args: Any, **kwargs: Any) -> torch.Tensor:
        return moe_call(*args, gemm=gemm, **kwargs)

    cuda = gemm == "cuda"
    return Backend(
        name=name,
        kind="moe-w4a16",
        call=call,
        description=description,
        dtypes=ACT_DTYPES,
        devices=("cuda",) if cuda else ("cpu", "cuda"),
        check_available=moe_cuda_available if cuda else triton_available,
        interpreted_on=() if cuda else ("cpu",),
        extra={"formats": fp4.FORMATS, "bench": True, "moe": call},
    )


register(moe_backend("moe-w4a16", "W4A16 MoE expert MLP: Triton kernels, clamped activation fused into GEMM1's"
                     " epilogue; at <= 2 tokens on a GPU the CUDA GEMM's routed rows", "auto"))
register(moe_backend("moe-w4a16-cuda", "W4A16 MoE expert MLP on the CUDA GEMM's routed rows (one M = 1 GEMM per"
                     " token and expert; made for decode), Triton activation and sum", "cuda"))

register(Backend(
    name="torch-moe-w4a16",
    kind="moe-w4a16",
    call=torch_moe,
    description="reference: dequantized FP4 experts, fp32 GEMMs and activation, one rounding",
    dtypes=ACT_DTYPES,
    extra={"formats": fp4.FORMATS},
))
