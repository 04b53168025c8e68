"""What the W4A16 kinds (`linear-w4a16`, `moe-w4a16`) share: seeded FP4 weights, the
rounding floor of a Triton-interpreted bf16 output, and table columns."""

from __future__ import annotations

import math
from typing import Any

import torch

from swiglu_check.references import fp4

from .. import dtypes as dt
from ..inputs import gaussian
from . import Column
from .format import fmt_num

WEIGHT_SEED_OFFSET = 1_000_003  # weights and activations come from different streams
INTERPRETER_FLOOR = "round-once toward zero (Triton interpreter's bf16 cast)"


def formats_of(backend: Any) -> tuple[str, ...]:
    """The FP4 formats a backend handles (`extra["formats"]`; both by default)."""
    return tuple(backend.extra.get("formats", fp4.FORMATS))


def dtypes_of(backend: Any, wanted: tuple[str, ...]) -> list[str]:
    """The asked-for dtypes this backend supports; all of them if it supports none
    (the runner then reports the SKIP and why)."""
    chosen = [d for d in wanted if d in backend.dtypes]
    return chosen or list(wanted)


def seeded_weight(shape: tuple[int, ...], seed: int, device: torch.device | str, std: float) -> torch.Tensor:
    """Gaussian fp32 weights `[..., N, K]` drawn on the CPU (same seed, same bits everywhere)."""
    rows = math.prod(shape[:-1])
    w = gaussian(rows, shape[-1], scale=std, seed=seed + WEIGHT_SEED_OFFSET, dtype=torch.float32)
    return w.reshape(shape).to(device)


def quantized_weight(shape: tuple[int, ...], fmt: str, seed: int, device: torch.device | str,
                     std: float, global_scale: float | None = None) -> tuple[fp4.FP4Weight, torch.Tensor, float]:
    """(FP4 weight on device, its exact float64 dequantization, FP4 quantization rel-L2
    against the unquantized weights; information only)."""
    w = seeded_weight(shape, seed, device, std)
    options = {"global_scale": global_scale} if fmt == "nvfp4" and global_scale is not None else {}
    q = fp4.quantize(w, fmt, **options)
    deq = fp4.dequantize(q)
    w64 = w.to(torch.float64)
    quant_error = float(torch.linalg.vector_norm(deq - w64) / torch.linalg.vector_norm(w64))
    return q, deq, quant_error


def round_toward_zero_bf16(values: torch.Tensor) -> torch.Tensor:
    """float64 -> bf16 truncating an fp32 value, as Triton 3.9's interpreter casts."""
    f32 = values.to(torch.float32).contiguous()
    return (f32.view(torch.int32) & -65536).view(torch.float32).to(torch.bfloat16)


def ideal_output(exact: torch.Tensor, dtype: torch.dtype, interpreted: bool) -> tuple[torch.Tensor, str]:
    """The ideal kernel's output (exact rounded once) and the name of that rounding.

    Under Triton 3.9's interpreter an fp32 -> bf16 cast truncates (DESIGN.md section 5),
    so the ideal interpreted kernel truncates once: that is its floor, about twice the
    round-to-nearest one. fp16 casts round to nearest there too."""
    if interpreted and dtype == torch.bfloat16:
        return round_toward_zero_bf16(exact), INTERPRETER_FLOOR
    return exact.to(dtype), "round-once"




FORMAT_COLUMN = Column("format", lambda r: r.params.get("format", ""), "left")
DTYPE_COLUMN = Column("dtype", lambda r: r.params.get("dtype", ""), "left")
QUANT_COLUMN = Column("FP4 quant err", lambda r: fmt_num(r.metrics.get("quant_rel_l2")))


def torch_dtype(name: str) -> torch.dtype:
    return dt.to_torch(name)
