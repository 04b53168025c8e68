"""Check kind `gated`: x `[T, 2D]` -> y `[T, D]`, judged against the exact float64 formula.

The verdict (README, "Verdicts"):

- FAIL when the output has NaN/Inf where the reference has none (or the reverse), or
  when the floor ratio exceeds the dtype's limit (default 2.0);
- INCONCLUSIVE when the op is clamped but the inputs hardly reach the limit, so that a
  backend which forgot the clamp would pass too; or when the case has fewer than
  MIN_ELEMENTS outputs (the floor ratio is then too noisy), unless the ratio is GLARING
  times over the limit (then FAIL);
- otherwise PASS.

For fp32 outputs the floor is the error of straightforward fp32 arithmetic on the same
inputs (computed here, per case) when that exceeds one rounding: fp32 math cannot be
correctly rounded in one step, so the one-rounding floor alone would fail every real
fp32 kernel.

`ClampStats`, `decide` and `clamp_warnings` are shared with the other gated kinds
(`gated-fp8`), so every kind judges clamp coverage and discriminative power alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import torch

from swiglu_check.references import gated as ref

from .. import dtypes as dt
from ..errors import InputError
from ..inputs import CLAMP_EXERCISING, VIEWS, InputSpec, count_poison, gated_input, poisoned, resolve_scale
from ..metrics import ErrorAccumulator, ratio, row_chunks
from ..ops import OpSpec, is_number, parse_limit
from ..results import ERROR, FAIL, INCONCLUSIVE, PASS, CaseResult
from ..settings import RunSettings
from . import Column, InputCache, kind_shapes
from .format import fmt_coverage, fmt_num, fmt_ratio, fmt_shape

NAME = "gated"
CPU_SHAPES = ((64, 512), (17, 1031))
GPU_SHAPES = ((1024, 2048), (1024, 4096), (257, 13831), (8192, 7168))
# Below this many outputs the sampled floor is too noisy for a floor-ratio verdict.
# Measured (eager and round-act recipes, 200 seeds, bf16/fp16, unclamped): the largest
# floor ratio of these correct kernels was 3.63 at 51 outputs, 2.07 at 512, 2.00 at 1024,
# 1.84 at 2048 and 1.76 at 4096.
MIN_ELEMENTS = 2048
# ... but an error this many times over the limit is wrong math at any size.
GLARING = 4.0
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
    if spec.view != "contiguous":
        parts.append(spec.view)
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
            "view": self.inputs.view,
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
            GatedCase(backend.name, op, dtype, tokens, width, settings.seed, replace(settings.inputs, distribution=name))
            for op in settings.ops()
            for name in input_sets_for(op, settings)
            for dtype in settings.dtypes
            for tokens, width in shapes
        ]

    def memory_estimate(self, case: GatedCase, settings: RunSettings) -> int:
        """Bytes a case needs besides the backend's own work: input, output, reference chunks."""
        size = dt.to_torch(case.dtype).itemsize
        input_bytes = case.tokens * (2 * case.width + (2 if case.inputs.view == "column-slice" else 0)) * size
        output_bytes = case.tokens * case.width * size * (2 if settings.device_type == "cuda" else 1)
        per_row = max(case.width, 1) * 8 * _F64_TEMPS_PER_OUTPUT
        chunk = min(case.tokens * per_row, max(per_row, chunk_budget(input_bytes, settings.chunk_bytes)))
        return input_bytes + output_bytes + chunk

    def parse_case_id(self, backend: str, rest: str) -> GatedCase:
        """Inverse of `GatedCase.case_id` (without the backend part)."""
        label, _, tail = rest.partition("/")
        match = _ID_TAIL.match(tail)
        if not label or not match:
            raise InputError(f"malformed gated case id {backend}/{rest!r}")
        limit = parse_limit(match["limit"])
        spec = InputSpec()
        for part in filter(None, match["rest"].split("/")):
            if part in VIEWS:
                spec = replace(spec, view=part)
            elif part.startswith("sc") and is_number(part[2:]):
                spec = replace(spec, scale=float(part[2:]))
            elif part.startswith("cf") and is_number(part[2:]):
                spec = replace(spec, clamp_fraction=float(part[2:]))
            else:
                spec = replace(spec, distribution=part)
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
        key = ("gated", case.tokens, case.width, case.dtype, case.scale, case.inputs, case.seed)
        x = cache.get(
            (*key, case.op.layout if case.inputs.distribution == "gelu-tail" else ""),
            lambda: gated_input(
                case.tokens,
                case.width,
                dtype=dt.to_torch(case.dtype),
                limit=case.op.limit,
                spec=case.inputs,
                seed=case.seed,
                device=settings.device,
                layout=case.op.layout,
            ),
        )
        return Prepared(x)

    def invoke(self, backend: Any, case: GatedCase, prepared: Prepared) -> Any:
        """Out-variant backends write into a poisoned buffer; on CUDA the caching allocator
        is also handed a poisoned block first, so that an output the backend allocates
        itself most likely starts poisoned too (best effort)."""
        x = prepared.x
        shape = (case.tokens, case.width)
        if backend.call_out is not None:
            out = poisoned(shape, x.dtype, x.device)
            backend.call_out(x, case.op, out)
            return out
        if x.is_cuda:
            poisoned(shape, x.dtype, x.device)  # freed at once: the allocator's next block holds poison
        return backend.call(x, case.op)

    def judge(self, case: GatedCase, prepared: Prepared, output: Any, settings: RunSettings, backend: Any) -> CaseResult:
        x = prepared.x
        problem = output_problem(output, (case.tokens, case.width), x.dtype, x.device)
        if problem:
            return result_for(case, ERROR, [problem])
        metrics = measure(case.op, x, output, settings.chunk_bytes)
        metrics["unwritten"] = count_poison(output)
        warnings: list[str] = []
        verdict, reasons = decide(
            metrics, case.op, settings.thresholds.floor_ratio_limit(case.dtype, NAME), settings,
            clamp_exercised=case.inputs.distribution in CLAMP_EXERCISING,
        )
        if verdict == PASS:
            warnings += clamp_warnings(metrics, case.op, settings)
        return result_for(case, verdict, reasons, metrics, warnings)

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
        kind=case.kind,
        params=case.params(),
        verdict=verdict,
        reasons=reasons,
        metrics=metrics or {},
        warnings=warnings or [],
    )


def chunk_budget(input_bytes: int, override: int | None) -> int:
    """Bytes of float64 temporaries per reference chunk: about the input's size."""
    if override is not None:
        return override
    return min(max(input_bytes, _MIN_CHUNK_BYTES), _MAX_CHUNK_BYTES)


class ClampStats:
    """Clamp coverage and discriminative power of one case, accumulated over row chunks.

    `missing` judges, against the exact result, what a backend that never received the
    limit would output (the unclamped formula, rounded or quantized the kind's way);
    `vs_unclamped` compares the real output with the unclamped formula.
    """

    def __init__(self) -> None:
        self.missing = ErrorAccumulator()
        self.vs_unclamped = ErrorAccumulator()
        self.gate_above = 0
        self.up_outside = 0

    def update(self, op: OpSpec, x: torch.Tensor, exact: torch.Tensor, unclamped: torch.Tensor,
               output: torch.Tensor, missing_output: torch.Tensor) -> None:
        self.missing.update(missing_output, exact)
        self.vs_unclamped.update(output, unclamped)
        above, outside = clamp_counts(x, op)
        self.gate_above += above
        self.up_outside += outside

    def metrics(self, elements: int, rel_l2: float, floor: float) -> dict[str, Any]:
        return dict(
            gate_above=self.gate_above / elements if elements else 0.0,
            up_outside=self.up_outside / elements if elements else 0.0,
            missing_clamp_rel_l2=self.missing.rel_l2,
            missing_clamp_ratio=ratio(self.missing.rel_l2, floor),
            rel_l2_vs_unclamped=self.vs_unclamped.rel_l2,
            discriminative_power=ratio(self.missing.rel_l2, rel_l2),
        )


def measure(op: OpSpec, x: torch.Tensor, y: torch.Tensor, chunk_bytes: int | None = None) -> dict[str, Any]:
    """All metrics of output `y` for input `x`, computed in row chunks."""
    tokens, width = y.shape
    out_dtype = y.dtype
    acc = ErrorAccumulator()
    clamp = ClampStats() if op.clamped else None
    arith = ErrorAccumulator()  # fp32 arithmetic floor (fp32 outputs only)
    per_row = max(width, 1) * 8 * _F64_TEMPS_PER_OUTPUT
    for start, stop in row_chunks(tokens, per_row, chunk_budget(x.numel() * x.element_size(), chunk_bytes)):
        xc, yc = x[start:stop], y[start:stop]
        exact = ref.exact(xc, op)
        ideal = exact.to(out_dtype)
        acc.update(yc, exact, ideal, offset=start * width)
        if clamp is not None:
            unclamped = ref.exact(xc, op, apply_clamp=False)
            clamp.update(op, xc, exact, unclamped, yc, unclamped.to(out_dtype))
            del unclamped
        if out_dtype == torch.float32:
            arith.update(ref.fused(xc, op), exact, ideal)  # the ideal's Inf/NaN status excludes overflow
        del exact, ideal

    elements = tokens * width
    floor_kind = "round-once"
    floor = acc.floor
    if out_dtype == torch.float32 and arith.rel_l2 > floor:
        floor, floor_kind = arith.rel_l2, "fp32-arith"
    metrics = acc.summary(tokens, width, floor=floor, floor_kind=floor_kind)
    if clamp is not None:
        metrics.update(clamp.metrics(elements, acc.rel_l2, floor))
    return metrics


def clamp_counts(x: torch.Tensor, op: OpSpec) -> tuple[int, int]:
    """(gates above L, ups outside [-L, L]) among the activation inputs `x` [..., 2D]."""
    gate, up = ref.split_gate_up(x, op.layout)
    return (int(torch.count_nonzero(gate > op.limit).item()), int(torch.count_nonzero(up.abs() > op.limit).item()))


def clamp_warnings(metrics: dict[str, Any], op: OpSpec, settings: RunSettings) -> list[str]:
    """A warning when a missing clamp would hardly stand out over the backend's own error."""
    if op.clamped and metrics.get("elements") and metrics["discriminative_power"] < settings.thresholds.weak_power:
        return [
            f"a missing clamp would stand out only {metrics['discriminative_power']:.1f}x over this"
            " backend's error; raise --clamp-fraction or --scale"
        ]
    return []


def decide(metrics: dict[str, Any], op: OpSpec, max_ratio: float, settings: RunSettings,
           *, clamp_exercised: bool = True) -> tuple[str, list[str]]:
    """The verdict and its reasons (rules in the module docstring)."""
    reasons = []
    if metrics.get("unwritten"):
        reasons.append(f"{metrics['unwritten']} output element(s) never written (they still hold the poison)")
    if metrics.get("nan_hidden"):
        reasons.append(
            f"hides NaN: {metrics['nan_hidden']} of {metrics['reference_nan']} outputs that are NaN in the"
            " reference (torch.clamp propagates NaN) come out as numbers, as an fminf-style clamp does"
        )
    if metrics.get("nan_created"):
        reasons.append(f"{metrics['nan_created']} NaN output(s) where the reference has a number")
    if metrics.get("inf_mismatch"):
        reasons.append(f"{metrics['inf_mismatch']} Inf mismatch(es) against the reference rounded to the dtype")
    small = 0 < metrics["elements"] < MIN_ELEMENTS
    if metrics["floor_ratio"] > (max_ratio * GLARING if small else max_ratio):
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
    if small:
        return INCONCLUSIVE, [
            f"only {metrics['elements']} outputs: below {MIN_ELEMENTS} the rounding floor is too noisy to judge"
            f" (floor ratio {fmt_ratio(metrics['floor_ratio'])}; it FAILs only above {max_ratio * GLARING:g});"
            " use a larger shape"
        ]
    if op.clamped and clamp_exercised and metrics["elements"]:
        needed = max_ratio * settings.thresholds.detect_margin
        if metrics["missing_clamp_ratio"] <= needed:
            return INCONCLUSIVE, [
                f"a backend that ignored the clamp would pass: the unclamped formula's floor ratio is"
                f" {fmt_ratio(metrics['missing_clamp_ratio'])} <= {needed:g}"
                f" ({metrics['gate_above']:.2%} of gates above L); raise --clamp-fraction or --scale"
            ]
    return PASS, []


def input_sets_for(op: OpSpec, settings: RunSettings) -> tuple[str, ...]:
    """The input sets asked for, or by default: gaussian, plus gelu-tail for GELU ops
    (on Gaussians alone tanh GELU and erf GELU differ by ~1/20 of a bf16 rounding)."""
    if settings.input_sets is not None:
        return settings.input_sets
    return ("gaussian", "gelu-tail") if op.activation in ("gelu", "gelu_tanh") else ("gaussian",)


BENCH_SHAPES = (
    (1024, 2048), (1024, 7168), (1024, 18432),
    (16384, 2048), (16384, 7168), (16384, 18432),
    (1, 7168), (16, 7168), (64, 7168),  # decode sizes: launch-bound, reported only
)
BENCH_REFERENCE = "torch-compile"


def bench_inputs(tokens: int, width: int, dtype: str, op: OpSpec, settings: RunSettings) -> list[torch.Tensor]:
    """Rotated `[T, 2D]` input sets for timing: enough of them to exceed the L2 cache."""
    from ..bench import rotation_sets

    torch_dtype = dt.to_torch(dtype)
    sets = rotation_sets(tokens * 2 * width * torch_dtype.itemsize)
    scale = resolve_scale(settings.inputs, op.limit)
    generator = torch.Generator(device=settings.device).manual_seed(settings.seed)
    return [
        (torch.randn((tokens, 2 * width), device=settings.device, generator=generator) * scale).to(torch_dtype)
        for _ in range(sets)
    ]


def gated_bench_workloads(backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
    """One workload per op, dtype and shape: bytes = input read + output written."""
    from ..bench import Workload

    workloads = []
    for op in settings.ops():
        for dtype in settings.dtypes:
            if not backend.supports(dtype, settings.device_type, op)[0]:
                continue
            for tokens, width in [s for s in shapes if len(s) == 2] if shapes else BENCH_SHAPES:
                size = dt.to_torch(dtype).itemsize
                xs = bench_inputs(tokens, width, dtype, op, settings)
                workloads.append(Workload(
                    backend=backend.name,
                    label=f"{dtype} {tokens}x{width} L{limit_text(op.limit)}",
                    call=lambda i, xs=xs, op=op: backend.call(xs[i], op),
                    bytes_moved=3 * tokens * width * size,
                    sets=len(xs),
                    group=f"{op.label}/{dtype}/L{limit_text(op.limit)}/{tokens}x{width}",
                    reference=backend.name == BENCH_REFERENCE,
                    params={"op": op.label, "limit": op.limit, "dtype": dtype, "shape": [tokens, width]},
                ))
    return workloads


KIND = GatedKind()
