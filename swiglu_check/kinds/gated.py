"""Check kind `gated`: x `[T, 2D]` -> y `[T, D]`, judged against the exact float64 formula.

The verdict (README, "Verdicts"):

- FAIL when the output has NaN/Inf where the reference has none (or the reverse), or
  when the floor ratio exceeds the dtype's limit (default 2.0);
- INCONCLUSIVE when the op is clamped but the inputs hardly reach the limit, so that a
  backend which forgot the clamp would pass too;
- otherwise PASS.

For fp32 outputs the floor is the error of straightforward fp32 arithmetic on the same
inputs (computed here, per case) when that exceeds one rounding: fp32 math cannot be
correctly rounded in one step, so the one-rounding floor alone would fail every real
fp32 kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from swiglu_check.references import gated as ref

from .. import dtypes as dt
from ..errors import InputError
from ..inputs import InputSpec, gated_input, resolve_scale
from ..metrics import ErrorAccumulator, ratio, row_chunks
from ..ops import OpSpec
from ..results import ERROR, FAIL, INCONCLUSIVE, PASS, CaseResult
from ..settings import RunSettings
from . import Column, InputCache, kind_shapes
from .format import fmt_coverage, fmt_num, fmt_ratio, fmt_shape

NAME = "gated"
CPU_SHAPES = ((64, 512), (17, 1031))
GPU_SHAPES = ((1024, 2048), (1024, 4096), (257, 13831), (8192, 7168))
_MIN_CHUNK_BYTES = 16 << 20
_MAX_CHUNK_BYTES = 1 << 30
# float64 temporaries of the reference per output element: the upcast input (2),
# the clamped gate and up, the activation, exact, unclamped, rounded copies (~10).
_F64_TEMPS_PER_OUTPUT = 12


def default_shapes(device_type: str) -> tuple[tuple[int, int], ...]:
    return GPU_SHAPES if device_type == "cuda" else CPU_SHAPES


def limit_text(limit: float | None) -> str:
    return "none" if limit is None else f"{limit:g}"


def input_suffix(spec: InputSpec, limit: float | None) -> str:
    """The part of a case id that names a non-default input distribution or scale."""
    parts = []
    if spec.distribution != "gaussian":
        parts.append(spec.distribution)
    if spec.scale is not None:
        parts.append(f"sc{spec.scale:g}")
    elif limit is not None and spec.clamp_fraction != InputSpec().clamp_fraction:
        parts.append(f"cf{spec.clamp_fraction:g}")
    return "".join(f"/{p}" for p in parts)


@dataclass(frozen=True)
class GatedCase:
    backend: str
    op: OpSpec
    dtype: str
    tokens: int
    width: int
    seed: int
    inputs: InputSpec = InputSpec()

    kind = NAME

    @property
    def case_id(self) -> str:
        return (
            f"{self.backend}/{self.op.label}/{self.dtype}/L{limit_text(self.op.limit)}"
            f"/{self.tokens}x{self.width}/s{self.seed}{input_suffix(self.inputs, self.op.limit)}"
        )

    @property
    def scale(self) -> float:
        return resolve_scale(self.inputs, self.op.limit)

    def params(self) -> dict[str, Any]:
        return {
            "op": self.op.label,
            "activation": self.op.activation,
            "alpha": self.op.alpha,
            "beta": self.op.beta,
            "layout": self.op.layout,
            "clamp": self.op.clamp,
            "limit": self.op.limit,
            "dtype": self.dtype,
            "shape": [self.tokens, self.width],
            "seed": self.seed,
            "distribution": self.inputs.distribution,
            "scale": self.scale,
        }


_ID_TAIL = re.compile(r"^(?P<dtype>[^/]+)/L(?P<limit>[^/]+)/(?P<t>\d+)x(?P<d>\d+)/s(?P<seed>\d+)(?P<rest>(/.*)?)$")


@dataclass
class Prepared:
    x: torch.Tensor


class GatedKind:
    name = NAME

    columns = [
        Column("dtype", lambda r: r.params.get("dtype", ""), "left"),
        Column("limit", lambda r: limit_text(r.params.get("limit"))),
        Column("shape", lambda r: fmt_shape(r.params.get("shape"))),
        Column("rel-L2", lambda r: fmt_num(r.metrics.get("rel_l2"))),
        Column("max-abs", lambda r: fmt_num(r.metrics.get("max_abs"))),
        Column("ULP max", lambda r: fmt_num(r.metrics.get("ulp_max"))),
        Column("floor ratio", lambda r: fmt_ratio(r.metrics.get("floor_ratio"))),
        Column("clamp cov.", lambda r: fmt_coverage(r.metrics)),
    ]

    def cases(self, backend: Any, settings: RunSettings) -> list[GatedCase]:
        shapes = kind_shapes(settings, 2, default_shapes(settings.device_type))
        return [
            GatedCase(backend.name, op, dtype, tokens, width, settings.seed, settings.inputs)
            for op in settings.ops()
            for dtype in settings.dtypes
            for tokens, width in shapes
        ]

    def parse_case_id(self, backend: str, rest: str) -> GatedCase:
        """Inverse of `GatedCase.case_id` (without the backend part)."""
        label, _, tail = rest.partition("/")
        match = _ID_TAIL.match(tail)
        if not label or not match:
            raise InputError(f"malformed gated case id {backend}/{rest!r}")
        from ..ops import parse_limit

        limit = parse_limit(match["limit"])
        spec = InputSpec()
        for part in filter(None, match["rest"].split("/")):
            if part.startswith("sc"):
                spec = InputSpec(spec.distribution, spec.clamp_fraction, float(part[2:]))
            elif part.startswith("cf"):
                spec = InputSpec(spec.distribution, float(part[2:]), spec.scale)
            else:
                spec = InputSpec(part, spec.clamp_fraction, spec.scale)
        return GatedCase(
            backend,
            OpSpec.from_label(label, limit),
            dt.canonical(match["dtype"]),
            int(match["t"]),
            int(match["d"]),
            int(match["seed"]),
            spec,
        )

    def prepare(self, case: GatedCase, settings: RunSettings, cache: InputCache) -> Prepared:
        key = ("gated", case.tokens, case.width, case.dtype, case.scale, case.inputs.distribution, case.seed)
        x = cache.get(
            key,
            lambda: gated_input(
                case.tokens,
                case.width,
                dtype=dt.to_torch(case.dtype),
                limit=case.op.limit,
                spec=case.inputs,
                seed=case.seed,
                device=settings.device,
            ),
        )
        return Prepared(x)

    def invoke(self, backend: Any, case: GatedCase, prepared: Prepared) -> Any:
        return backend.call(prepared.x, case.op)

    def judge(self, case: GatedCase, prepared: Prepared, output: Any, settings: RunSettings, backend: Any) -> CaseResult:
        x = prepared.x
        problem = output_problem(output, (case.tokens, case.width), x.dtype, x.device)
        if problem:
            return result_for(case, ERROR, [problem])
        metrics = measure(case.op, x, output, settings.chunk_bytes)
        verdict, reasons = decide(metrics, case.op, settings.thresholds.floor_ratio_limit(case.dtype), settings)
        return result_for(case, verdict, reasons, metrics, clamp_warnings(metrics, case.op, settings))

    def bench_workloads(self, backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
        return gated_bench_workloads(backend, settings, shapes)


def output_problem(output: Any, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> str:
    """Why a backend's output cannot be judged at all ('' when it can)."""
    if not isinstance(output, torch.Tensor):
        return f"backend returned {type(output).__name__}, expected a torch.Tensor"
    if tuple(output.shape) != tuple(shape):
        return f"backend returned shape {tuple(output.shape)}, expected {tuple(shape)}"
    if output.dtype != dtype:
        return f"backend returned dtype {dt.name_of(output.dtype)}, expected {dt.name_of(dtype)}"
    if output.device != device:
        return f"backend returned a tensor on {output.device}, expected {device}"
    return ""


def result_for(
    case: GatedCase,
    verdict: str,
    reasons: list[str],
    metrics: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> CaseResult:
    return CaseResult(
        case_id=case.case_id,
        backend=case.backend,
        kind=NAME,
        params=case.params(),
        verdict=verdict,
        reasons=reasons,
        metrics=metrics or {},
        warnings=warnings or [],
    )


def chunk_budget(x: torch.Tensor, override: int | None) -> int:
    if override is not None:
        return override
    return min(max(x.numel() * x.element_size(), _MIN_CHUNK_BYTES), _MAX_CHUNK_BYTES)


def measure(op: OpSpec, x: torch.Tensor, y: torch.Tensor, chunk_bytes: int | None = None) -> dict[str, Any]:
    """All metrics of output `y` for input `x`, computed in row chunks."""
    tokens, width = y.shape
    out_dtype = y.dtype
    acc = ErrorAccumulator()
    missing = ErrorAccumulator()  # the unclamped formula, rounded, as if it were a backend
    vs_unclamped = ErrorAccumulator()  # this output against the unclamped formula
    arith = ErrorAccumulator()  # fp32 arithmetic floor (fp32 outputs only)
    gate_above = up_outside = 0
    per_row = max(width, 1) * 8 * _F64_TEMPS_PER_OUTPUT
    for start, stop in row_chunks(tokens, per_row, chunk_budget(x, chunk_bytes)):
        xc, yc = x[start:stop], y[start:stop]
        exact = ref.exact(xc, op)
        acc.update(yc, exact, exact.to(out_dtype), offset=start * width)
        if op.clamped:
            unclamped = ref.exact(xc, op, apply_clamp=False)
            missing.update(unclamped.to(out_dtype), exact)
            vs_unclamped.update(yc, unclamped)
            del unclamped
            above, outside = clamp_counts(xc, op)
            gate_above += above
            up_outside += outside
        if out_dtype == torch.float32:
            arith.update(ref.fused(xc, op), exact)
        del exact

    elements = tokens * width
    floor_kind = "round-once"
    floor = acc.floor
    if out_dtype == torch.float32 and arith.rel_l2 > floor:
        floor, floor_kind = arith.rel_l2, "fp32-arith"
    worst_row, worst_col = divmod(acc.worst.index, width) if acc.worst.index >= 0 else (-1, -1)
    metrics: dict[str, Any] = {
        "elements": elements,
        "rel_l2": acc.rel_l2,
        "max_abs": acc.max_abs,
        "floor": floor,
        "floor_kind": floor_kind,
        "floor_ratio": ratio(acc.rel_l2, floor),
        "ulp_max": acc.ulps.maximum if acc.ulps else 0,
        "ulp_p99": acc.ulps.quantile(0.99) if acc.ulps else 0,
        "nan_mismatch": acc.nan_mismatch,
        "inf_mismatch": acc.inf_mismatch,
        "worst_row": worst_row,
        "worst_col": worst_col,
        "worst_output": acc.worst.output,
        "worst_exact": acc.worst.exact,
    }
    if op.clamped:
        metrics.update(
            gate_above=gate_above / elements if elements else 0.0,
            up_outside=up_outside / elements if elements else 0.0,
            missing_clamp_rel_l2=missing.rel_l2,
            missing_clamp_ratio=ratio(missing.rel_l2, floor),
            rel_l2_vs_unclamped=vs_unclamped.rel_l2,
            discriminative_power=ratio(missing.rel_l2, acc.rel_l2),
        )
    return metrics


def clamp_counts(x: torch.Tensor, op: OpSpec) -> tuple[int, int]:
    """(gates above L, ups outside [-L, L]) among the activation inputs `x` [..., 2D]."""
    gate, up = ref.split_gate_up(x, op.layout)
    return (int(torch.count_nonzero(gate > op.limit).item()), int(torch.count_nonzero(up.abs() > op.limit).item()))


def clamp_warnings(metrics: dict[str, Any], op: OpSpec, settings: RunSettings) -> list[str]:
    """A warning when a missing clamp would hardly stand out over the backend's error."""
    if op.clamped and metrics["elements"] and metrics["discriminative_power"] < settings.thresholds.weak_power:
        return [
            f"a missing clamp would stand out only {metrics['discriminative_power']:.1f}x over this"
            " backend's error; raise --clamp-fraction or --scale"
        ]
    return []


def decide(metrics: dict[str, Any], op: OpSpec, max_ratio: float, settings: RunSettings) -> tuple[str, list[str]]:
    """The verdict and its reasons (rules in the module docstring)."""
    reasons = []
    if metrics["nan_mismatch"]:
        reasons.append(f"{metrics['nan_mismatch']} NaN mismatch(es) against the reference")
    if metrics["inf_mismatch"]:
        reasons.append(f"{metrics['inf_mismatch']} Inf mismatch(es) against the reference")
    if metrics["floor_ratio"] > max_ratio:
        reasons.append(
            f"floor ratio {fmt_ratio(metrics['floor_ratio'])} > {max_ratio:g}"
            f" (rel-L2 {fmt_num(metrics['rel_l2'])}, floor {fmt_num(metrics['floor'])};"
            f" worst at row {metrics['worst_row']} col {metrics['worst_col']}:"
            f" {metrics['worst_output']:.6g} vs exact {metrics['worst_exact']:.6g})"
        )
        if op.clamped and metrics["rel_l2_vs_unclamped"] < metrics["rel_l2"]:
            reasons.append(
                f"output matches the unclamped formula (rel-L2 {fmt_num(metrics['rel_l2_vs_unclamped'])})"
                " better than the clamped one: clamp not applied"
            )
    if reasons:
        return FAIL, reasons
    if op.clamped and metrics["elements"]:
        needed = max_ratio * settings.thresholds.detect_margin
        if metrics["missing_clamp_ratio"] <= needed:
            return INCONCLUSIVE, [
                f"a backend that ignored the clamp would pass: the unclamped formula's floor ratio is"
                f" {fmt_ratio(metrics['missing_clamp_ratio'])} <= {needed:g}"
                f" ({metrics['gate_above']:.2%} of gates above L); raise --clamp-fraction or --scale"
            ]
    return PASS, []


BENCH_SHAPES = (
    (1024, 2048), (1024, 7168), (1024, 18432),
    (16384, 2048), (16384, 7168), (16384, 18432),
    (1, 7168), (16, 7168), (64, 7168),  # decode sizes: launch-bound, reported only
)
BENCH_REFERENCE = "torch-compile"


def gated_bench_workloads(backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
    """One workload per op, dtype and shape: bytes = input read + output written."""
    from ..bench import Workload, rotation_sets

    workloads = []
    for op in settings.ops():
        for dtype in settings.dtypes:
            torch_dtype = dt.to_torch(dtype)
            if not backend.supports(dtype, settings.device_type, op)[0]:
                continue
            for tokens, width in [s for s in shapes if len(s) == 2] if shapes else BENCH_SHAPES:
                size = torch_dtype.itemsize
                sets = rotation_sets(tokens * 2 * width * size)
                scale = resolve_scale(settings.inputs, op.limit)
                generator = torch.Generator(device=settings.device).manual_seed(settings.seed)
                xs = [
                    (torch.randn((tokens, 2 * width), device=settings.device, generator=generator) * scale).to(torch_dtype)
                    for _ in range(sets)
                ]
                workloads.append(Workload(
                    backend=backend.name,
                    label=f"{dtype} {tokens}x{width} L{limit_text(op.limit)}",
                    call=lambda i, xs=xs, op=op: backend.call(xs[i], op),
                    bytes_moved=3 * tokens * width * size,
                    sets=sets,
                    group=f"{op.label}/{dtype}/L{limit_text(op.limit)}/{tokens}x{width}",
                    reference=backend.name == BENCH_REFERENCE,
                    params={"op": op.label, "limit": op.limit, "dtype": dtype, "shape": [tokens, width]},
                ))
    return workloads


KIND = GatedKind()
