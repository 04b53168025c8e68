"""Check kind `linear-w4a16`: `y = x @ dequant(W)^T` with FP4 weights (NVFP4, MXFP4).

A backend is called as `call(x, weight) -> y`: x `[M, K]` bf16/fp16, weight an
`FP4Weight` `[N, K]` (references/fp4.py) on x's device, y `[M, N]` in x's dtype.

Each case draws Gaussian weights (std 1/sqrt(K)), quantizes them to the case's format,
and judges the backend against the exact float64 product on the *same dequantized*
weights (x upcast exactly). The floor is that product rounded once to the output dtype,
so an fp32-accumulating kernel sits near 1.0. The FP4 quantization error against the
unquantized weights (~10% rel-L2) is reported for information only; it never enters
the verdict. Verdict rules are the gated kind's (`gated.decide`) for an unclamped op:
FAIL on NaN/Inf mismatches or a floor ratio above the dtype's limit (default 2.0).

Shapes are `MxKxN` (`--shape 16x4096x14336`); K must be a multiple of the format's
block (16 for NVFP4, 32 for MXFP4).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from swiglu_check.references import fp4

from .. import dtypes as dt
from ..errors import InputError
from ..inputs import gaussian
from ..metrics import ErrorAccumulator
from ..ops import OpSpec
from ..results import ERROR, CaseResult
from ..settings import RunSettings
from . import Column, InputCache, kind_shapes
from .format import fmt_num, fmt_ratio, fmt_shape
from .gated import decide, output_problem
from .w4a16_common import (
    DTYPE_COLUMN, FORMAT_COLUMN, QUANT_COLUMN, dtypes_of, formats_of, ideal_output,
    quantized_weight,
)

NAME = "linear-w4a16"
CPU_SHAPES = ((16, 96, 128),)  # 2048 outputs: fewer are too few for a floor-ratio verdict
GPU_SHAPES = (
    (1, 4096, 4096), (16, 4096, 14336), (64, 14336, 4096),
    (1, 14336, 4096), (16, 4096, 4096), (256, 4096, 14336), (33, 2112, 1000),
)
BENCH_SHAPES = tuple((m, k, n) for m in (1, 16, 64) for k, n in ((4096, 4096), (4096, 14336), (14336, 4096)))
_UNCLAMPED = OpSpec()  # the gated kind's verdict rules without the clamp checks
_ID = re.compile(r"^(?P<fmt>[^/]+)/(?P<dtype>[^/]+)/(?P<m>\d+)x(?P<k>\d+)x(?P<n>\d+)/s(?P<seed>\d+)$")


@dataclass(frozen=True)
class LinearCase:
    backend: str
    format: str
    dtype: str
    m: int
    k: int
    n: int
    seed: int

    kind = NAME

    @property
    def case_id(self) -> str:
        return f"{self.backend}/{self.format}/{self.dtype}/{self.m}x{self.k}x{self.n}/s{self.seed}"

    def params(self) -> dict[str, Any]:
        return {"format": self.format, "dtype": self.dtype, "shape": [self.m, self.k, self.n], "seed": self.seed}


@dataclass
class Prepared:
    x: torch.Tensor
    weight: fp4.FP4Weight
    exact: torch.Tensor  # float64 [M, N]
    quant_rel_l2: float


def check_k(fmt: str, k: int, where: str) -> None:
    block = fp4.BLOCK_SIZE[fmt]
    if k % block:
        raise InputError(f"{where}: K = {k} is not a multiple of {fmt}'s block size {block}")


class LinearW4A16Kind:
    name = NAME

    columns = [
        FORMAT_COLUMN,
        DTYPE_COLUMN,
        Column("MxKxN", lambda r: fmt_shape(r.params.get("shape"))),
        Column("rel-L2", lambda r: fmt_num(r.metrics.get("rel_l2"))),
        Column("max-abs", lambda r: fmt_num(r.metrics.get("max_abs"))),
        Column("ULP max", lambda r: fmt_num(r.metrics.get("ulp_max"))),
        Column("floor ratio", lambda r: fmt_ratio(r.metrics.get("floor_ratio"))),
        QUANT_COLUMN,
    ]

    def cases(self, backend: Any, settings: RunSettings) -> list[LinearCase]:
        default = GPU_SHAPES if settings.device_type == "cuda" else CPU_SHAPES
        cases = []
        for fmt in formats_of(backend):
            for dtype in dtypes_of(backend, settings.dtypes):
                for m, k, n in kind_shapes(settings, 3, default):
                    check_k(fmt, k, f"{NAME} shape {m}x{k}x{n}")
                    cases.append(LinearCase(backend.name, fmt, dtype, m, k, n, settings.seed))
        return cases

    def parse_case_id(self, backend: str, rest: str) -> LinearCase:
        match = _ID.match(rest)
        if not match or match["fmt"] not in fp4.FORMATS:
            raise InputError(f"malformed {NAME} case id {backend}/{rest!r}")
        return LinearCase(backend, match["fmt"], dt.canonical(match["dtype"]), int(match["m"]), int(match["k"]),
                          int(match["n"]), int(match["seed"]))

    def prepare(self, case: LinearCase, settings: RunSettings, cache: InputCache) -> Prepared:
        key = (NAME, case.format, case.dtype, case.m, case.k, case.n, case.seed, settings.device)
        return cache.get(key, lambda: prepare_linear(case, settings.device))

    def invoke(self, backend: Any, case: LinearCase, prepared: Prepared) -> Any:
        return backend.call(prepared.x, prepared.weight)

    def judge(self, case: LinearCase, prepared: Prepared, output: Any, settings: RunSettings,
              backend: Any) -> CaseResult:
        x = prepared.x
        problem = output_problem(output, (case.m, case.n), x.dtype, x.device)
        if problem:
            return result_for(case, ERROR, [problem])
        ideal, floor_kind = ideal_output(prepared.exact, x.dtype, backend.interpreted(settings.device_type))
        acc = ErrorAccumulator()
        acc.update(output, prepared.exact, ideal)
        metrics = acc.summary(case.m, case.n, floor_kind=floor_kind)
        metrics["quant_rel_l2"] = prepared.quant_rel_l2
        verdict, reasons = decide(metrics, _UNCLAMPED, settings.thresholds.floor_ratio_limit(case.dtype), settings)
        return result_for(case, verdict, reasons, metrics)

    def bench_workloads(self, backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
        return linear_bench_workloads(backend, settings, shapes)


def prepare_linear(case: LinearCase, device: str) -> Prepared:
    weight, dequantized, quant_error = quantized_weight((case.n, case.k), case.format, case.seed, device,
                                                         std=1.0 / math.sqrt(max(case.k, 1)))
    x = gaussian(case.m, case.k, scale=1.0, seed=case.seed, dtype=dt.to_torch(case.dtype), device=device)
    exact = x.to(torch.float64) @ dequantized.T
    return Prepared(x, weight.to(device), exact, quant_error)


def result_for(case: LinearCase, verdict: str, reasons: list[str], metrics: dict[str, Any] | None = None) -> CaseResult:
    return CaseResult(case_id=case.case_id, backend=case.backend, kind=NAME, params=case.params(),
                      verdict=verdict, reasons=reasons, metrics=metrics or {})


class LazySets:
    """Rotated input sets, built on first use (a workload dropped as a duplicate never
    allocates)."""

    def __init__(self, make: Callable[[int], Any], count: int) -> None:
        self._make = make
        self._count = count
        self._sets: list[Any] | None = None

    def __getitem__(self, i: int) -> Any:
        if self._sets is None:
            self._sets = [self._make(j) for j in range(self._count)]
        return self._sets[i % self._count]


def fp4_bytes(fmt: str, n: int, k: int) -> int:
    """Bytes of an `[N, K]` FP4 weight: packed codes, block scales, the global scale."""
    return n * k // 2 + n * (k // fp4.BLOCK_SIZE[fmt]) + (4 if fmt == "nvfp4" else 0)


def random_fp4_weight(fmt: str, n: int, k: int, device: str, generator: torch.Generator) -> fp4.FP4Weight:
    """Random codes and valid scales (timing only: the values are never judged)."""
    packed = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device=device, generator=generator)
    blocks = k // fp4.BLOCK_SIZE[fmt]
    if fmt == "nvfp4":
        scales = (torch.rand((n, blocks), device=device, generator=generator) + 0.5).to(torch.float8_e4m3fn)
        return fp4.FP4Weight(fmt, packed, scales.view(torch.uint8), torch.tensor(1e-3, device=device))
    scales = torch.randint(118, 128, (n, blocks), dtype=torch.uint8, device=device, generator=generator)
    return fp4.FP4Weight(fmt, packed, scales, torch.ones((), device=device))


def cublas_workload(m: int, k: int, n: int, dtype: str, group: str, device: str, seed: int) -> Any:
    """The reference row: a 16-bit `torch.matmul` (cuBLAS) of the same shape."""
    from ..bench import Workload, rotation_sets

    torch_dtype = dt.to_torch(dtype)
    generator = torch.Generator(device=device).manual_seed(seed)
    sets = rotation_sets(n * k * torch_dtype.itemsize)
    data = LazySets(lambda _j: (torch.randn((m, k), device=device, generator=generator).to(torch_dtype),
                                torch.randn((n, k), device=device, generator=generator).to(torch_dtype)), sets)
    return Workload(
        backend="torch.matmul", label=f"cuBLAS {dtype} {m}x{k}x{n}",
        call=lambda i: torch.matmul(data[i][0], data[i][1].t()),
        bytes_moved=(n * k + m * k + m * n) * torch_dtype.itemsize, sets=sets, flops=2 * m * n * k,
        group=group, reference=True, params={"dtype": dtype, "shape": [m, k, n], "weights": dtype}, graph=True,
    )


def linear_bench_workloads(backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
    """Per shape: the cuBLAS reference row and this backend's row for each format. Bytes
    are what the kernel must move: packed codes + scales + x + y (the weight-bytes floor).
    Both rows are timed as CUDA-graph replays: at decode sizes the host's launch cost
    (tens of us per eager call on the lent H100) would otherwise hide the kernels' time."""
    from ..bench import Workload, rotation_sets

    if not backend.extra.get("bench"):
        return []
    chosen = [s for s in shapes if len(s) == 3] if shapes else BENCH_SHAPES
    device = settings.device
    workloads = []
    for dtype in [d for d in settings.dtypes if d in backend.dtypes]:
        torch_dtype = dt.to_torch(dtype)
        for m, k, n in chosen:
            group = f"{NAME}/{dtype}/{m}x{k}x{n}"
            workloads.append(cublas_workload(m, k, n, dtype, group, device, settings.seed))
            for fmt in formats_of(backend):
                check_k(fmt, k, f"{NAME} bench shape {m}x{k}x{n}")
                weight_bytes = fp4_bytes(fmt, n, k)
                sets = rotation_sets(weight_bytes)
                generator = torch.Generator(device=device).manual_seed(settings.seed)
                data = LazySets(lambda _j, fmt=fmt, k=k, n=n, m=m, g=generator: (
                    torch.randn((m, k), device=device, generator=g).to(torch_dtype),
                    random_fp4_weight(fmt, n, k, device, g)), sets)
                workloads.append(Workload(
                    backend=backend.name, label=f"{fmt} {dtype} {m}x{k}x{n}",
                    call=lambda i, data=data: backend.call(*data[i]),
                    bytes_moved=weight_bytes + (m * k + m * n) * torch_dtype.itemsize, sets=sets,
                    flops=2 * m * n * k, group=group,
                    params={"format": fmt, "dtype": dtype, "shape": [m, k, n]}, graph=True,
                ))
    return workloads


KIND = LinearW4A16Kind()
