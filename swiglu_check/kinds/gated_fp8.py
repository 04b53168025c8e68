"""Check kind `gated-fp8`: x `[T, 2D]` -> (q `[T, D]` float8_e4m3fn, scales fp32 `[T, D/G]`).

A backend is called as `call(x, op, spec)` with an `Fp8Spec` (group size, UE8M0,
scale layout; `swiglu_check.quant`) and returns `(q, scales)`; scales are the logical
`[T, D/G]` tensor, for column-major the transpose view of a contiguous `[D/G, T]`.

Judged in dequantized space (DESIGN.md section 3):

- error = rel-L2 of `q * scale` against the *exact* activation (float64);
- floor = the same error of the exact quantizer (`references.fp8.quantize` applied to
  the exact activation): a kernel that computes y in fp32 and quantizes it sits at ~1.0;
- FAIL / INCONCLUSIVE / PASS with the gated kind's rules and threshold (`decide`): NaN
  or Inf mismatches, floor ratio over the limit, a clamp the inputs never reach. The
  missing-clamp model is the unclamped activation through the exact quantizer.

Also reported, for information: the fraction of scales that differ (bitwise) from the
exact quantizer's, and of q codes more than one e4m3 code away from its. Legitimate
kernels differ in some scales by an fp32 ulp (their y is fp32, not exact), which moves q
by at most one code; codes further away mean a different scale convention (e.g. a
different FP8 maximum), which dequantized error alone may not reveal: it is warned about.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch

from swiglu_check.references import fp8 as fp8_ref
from swiglu_check.references import gated as ref

from ..errors import InputError
from ..metrics import ErrorAccumulator, row_chunks
from ..ops import OpSpec
from ..quant import Fp8Spec
from ..results import ERROR, CaseResult
from ..settings import RunSettings
from . import Column, InputCache, kind_shapes
from .format import fmt_coverage, fmt_num, fmt_ratio, fmt_shape
from .gated import (
    BENCH_SHAPES,
    ClampStats,
    GatedCase,
    Prepared,
    bench_inputs,
    chunk_budget,
    clamp_warnings,
    decide,
    input_suffix,
    limit_text,
    output_problem,
    result_for,
)
from .gated import KIND as GATED

NAME = "gated-fp8"
CPU_SHAPES = ((16, 384),)  # interpreted on a CPU: one shape of 6144 outputs keeps the default run short
GPU_SHAPES = ((1024, 2048), (257, 7168), (8192, 7168))
# float64 temporaries per output element: exact, unclamped, their quantized and
# dequantized copies, the expanded scales, the kernel's dequantized output (~16)
_F64_TEMPS_PER_OUTPUT = 16
_QUANT_PART = re.compile(r"^(?P<head>.*?/s\d+)/(?P<quant>g\d+[^/]*)(?P<tail>(/.*)?)$")


def default_shapes(device_type: str) -> tuple[tuple[int, int], ...]:
    return GPU_SHAPES if device_type == "cuda" else CPU_SHAPES


@dataclass(frozen=True)
class GatedFp8Case(GatedCase):
    """A gated case plus the FP8 quantization asked for."""

    quant: Fp8Spec = Fp8Spec()

    kind = NAME

    @property
    def case_id(self) -> str:
        suffix = input_suffix(self.inputs, self.op.limit)
        base = GatedCase.case_id.fget(self)  # type: ignore[attr-defined]
        head = base[: len(base) - len(suffix)] if suffix else base
        return f"{head}/{self.quant.label}{suffix}"

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "group_size": self.quant.group_size,
            "ue8m0": self.quant.ue8m0,
            "scale_layout": self.quant.scale_layout,
        }


def fmt_quant(result: CaseResult) -> str:
    params = result.params
    parts = [f"g{params.get('group_size', '?')}", params.get("scale_layout", "?")]
    if params.get("ue8m0"):
        parts.append("ue8m0")
    return " ".join(str(p) for p in parts)


def fmt_fraction(value: Any) -> str:
    if not isinstance(value, float):
        return "-"
    return "0" if value == 0.0 else f"{value:.2%}"


def fmt_scales(result: CaseResult) -> str:
    """Share of scales that differ bitwise from the exact quantizer's, and by how much at
    most (relative): ~1e-7 is fp32 noise, 0.5 or 1 a power of two."""
    share = result.metrics.get("scale_mismatch")
    if not isinstance(share, float):
        return "-"
    if share == 0.0:
        return "0"
    return f"{share:.1%} ({fmt_num(result.metrics.get('scale_max_rel_diff'))})"


class GatedFp8Kind:
    name = NAME

    columns = [
        Column("dtype", lambda r: r.params.get("dtype", ""), "left"),
        Column("limit", lambda r: limit_text(r.params.get("limit"))),
        Column("shape", lambda r: fmt_shape(r.params.get("shape"))),
        Column("quant", fmt_quant, "left"),
        Column("rel-L2 (deq)", lambda r: fmt_num(r.metrics.get("rel_l2"))),
        Column("floor ratio", lambda r: fmt_ratio(r.metrics.get("floor_ratio"))),
        Column("scales != (max rel)", fmt_scales),
        Column("q >1 code", lambda r: fmt_fraction(r.metrics.get("codes_far"))),
        Column("clamp cov.", lambda r: fmt_coverage(r.metrics)),
    ]

    def cases(self, backend: Any, settings: RunSettings) -> list[GatedFp8Case]:
        shapes = kind_shapes(settings, 2, default_shapes(settings.device_type))
        return [
            GatedFp8Case(backend.name, op, dtype, tokens, width, settings.seed, settings.inputs, spec)
            for op in settings.ops()
            for spec in settings.fp8
            for dtype in settings.dtypes
            for tokens, width in shapes
        ]

    def parse_case_id(self, backend: str, rest: str) -> GatedFp8Case:
        """Inverse of `GatedFp8Case.case_id` (without the backend part)."""
        match = _QUANT_PART.match(rest)
        if not match:
            raise InputError(f"malformed gated-fp8 case id {backend}/{rest!r} (no /g<group size> part)")
        base = GATED.parse_case_id(backend, match["head"] + match["tail"])
        fields = {name: getattr(base, name) for name in GatedCase.__dataclass_fields__}
        return GatedFp8Case(**fields, quant=Fp8Spec.from_label(match["quant"]))

    def skip_reason(self, case: GatedFp8Case, backend: Any) -> str:
        problem = case.quant.mismatch(case.width)
        if problem:
            return problem
        supports = backend.extra.get("supports_fp8")
        if supports is not None:
            ok, why = supports(case.quant)
            if not ok:
                return why
        return ""

    def prepare(self, case: GatedFp8Case, settings: RunSettings, cache: InputCache) -> Prepared:
        return GATED.prepare(case, settings, cache)

    def invoke(self, backend: Any, case: GatedFp8Case, prepared: Prepared) -> Any:
        return backend.call(prepared.x, case.op, case.quant)

    def judge(self, case: GatedFp8Case, prepared: Prepared, output: Any, settings: RunSettings,
              backend: Any) -> CaseResult:
        x = prepared.x
        problem = fp8_output_problem(output, case.tokens, case.width, case.quant, x.device)
        if problem:
            return result_for(case, ERROR, [problem])
        q, scales = output
        metrics = measure(case.op, case.quant, x, q, scales, settings.chunk_bytes)
        verdict, reasons = decide(metrics, case.op, settings.thresholds.floor_ratio_limit(case.dtype, NAME), settings)
        warnings = clamp_warnings(metrics, case.op, settings)
        if metrics["codes_far"] > 0:
            warnings.append(
                f"{metrics['codes_far']:.2%} of q codes are more than one e4m3 code from the exact"
                f" quantizer's ({metrics['scale_mismatch']:.2%} of scales differ): another scale convention?"
            )
        return result_for(case, verdict, reasons, metrics, warnings)

    def bench_workloads(self, backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
        return fp8_bench_workloads(backend, settings, shapes)


def fp8_output_problem(output: Any, tokens: int, width: int, spec: Fp8Spec, device: torch.device) -> str:
    """Why a backend's (q, scales) cannot be judged at all ('' when it can)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        return f"backend returned {type(output).__name__}, expected a (q, scales) pair"
    q, scales = output
    problem = output_problem(q, (tokens, width), torch.float8_e4m3fn, device)
    if problem:
        return f"q: {problem}"
    groups = width // spec.group_size
    problem = output_problem(scales, (tokens, groups), torch.float32, device)
    if problem:
        return f"scales: {problem}"
    if tokens > 1 and groups > 1:
        if spec.column_major and scales.stride() != (1, tokens):
            return (f"scales: strides {scales.stride()}, expected (1, {tokens}): the column-major"
                    f" layout is the [T, D/G] transpose view of a contiguous [D/G, T] tensor")
        if not spec.column_major and scales.stride() != (groups, 1):
            return f"scales: strides {scales.stride()}, expected row-major ({groups}, 1)"
    return ""


def measure(op: OpSpec, spec: Fp8Spec, x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor,
            chunk_bytes: int | None = None) -> dict[str, Any]:
    """All metrics of (q, scales) for input `x`, in dequantized space, in row chunks."""
    tokens, width = q.shape
    group = spec.group_size
    acc = ErrorAccumulator()  # the backend's q * scale against the exact activation
    floor_acc = ErrorAccumulator()  # the exact quantizer's, likewise: the floor
    clamp = ClampStats() if op.clamped else None
    scale_mismatch = codes_far = codes_differ = 0
    scale_max_rel = 0.0
    per_row = max(width, 1) * 8 * _F64_TEMPS_PER_OUTPUT
    for start, stop in row_chunks(tokens, per_row, chunk_budget(x.numel() * x.element_size(), chunk_bytes)):
        xc, qc, sc = x[start:stop], q[start:stop], scales[start:stop]
        exact = ref.exact(xc, op)
        q_ref, s_ref = fp8_ref.quantize(exact, spec)
        deq = fp8_ref.dequantize(qc, sc, group)
        acc.update(deq, exact, offset=start * width)
        floor_acc.update(fp8_ref.dequantize(q_ref, s_ref, group), exact)
        same_scale = (sc == s_ref) | (torch.isnan(sc) & torch.isnan(s_ref))
        scale_mismatch += int(torch.count_nonzero(~same_scale).item())
        if sc.numel():
            rel_diff = ((sc.to(torch.float64) - s_ref.to(torch.float64)).abs() / s_ref.to(torch.float64))
            scale_max_rel = max(scale_max_rel, float(rel_diff.nan_to_num(nan=0.0).max().item()))
        distance = (fp8_ref.e4m3_codes(qc) - fp8_ref.e4m3_codes(q_ref)).abs()
        codes_far += int(torch.count_nonzero(distance > 1).item())
        codes_differ += int(torch.count_nonzero(distance).item())
        if clamp is not None:
            unclamped = ref.exact(xc, op, apply_clamp=False)
            missing = fp8_ref.dequantize(*fp8_ref.quantize(unclamped, spec), group)
            clamp.update(op, xc, exact, unclamped, deq, missing)
            del unclamped, missing
        del exact, deq

    elements = tokens * width
    n_scales = tokens * (width // group)
    floor = floor_acc.rel_l2
    metrics: dict[str, Any] = {
        **acc.summary(tokens, width, floor=floor, floor_kind="exact-quantizer"),
        "scale_mismatch": scale_mismatch / n_scales if n_scales else 0.0,
        "scale_max_rel_diff": scale_max_rel,
        "codes_far": codes_far / elements if elements else 0.0,
        "codes_differ": codes_differ / elements if elements else 0.0,
    }
    if clamp is not None:
        metrics.update(clamp.metrics(elements, acc.rel_l2, floor))
    return metrics


def fp8_bench_workloads(backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
    """One workload per op, dtype, FP8 spec and shape. Bytes: the `[T, 2D]` input read,
    the `[T, D]` fp8 values and the fp32 scales written."""
    from ..bench import Workload

    workloads = []
    for op in settings.ops():
        for dtype in settings.dtypes:
            if not backend.supports(dtype, settings.device_type, op)[0]:
                continue
            for spec in settings.fp8:
                for tokens, width in shapes or BENCH_SHAPES:
                    if spec.mismatch(width):
                        continue
                    xs = bench_inputs(tokens, width, dtype, op, settings)
                    size = xs[0].element_size()
                    groups = width // spec.group_size
                    workloads.append(Workload(
                        backend=backend.name,
                        label=f"{dtype} {tokens}x{width} L{limit_text(op.limit)} {spec.label}",
                        call=lambda i, xs=xs, op=op, spec=spec: backend.call(xs[i], op, spec),
                        bytes_moved=2 * tokens * width * size + tokens * width + 4 * tokens * groups,
                        sets=len(xs),
                        group=f"fp8/{op.label}/{dtype}/L{limit_text(op.limit)}/{tokens}x{width}/{spec.label}",
                        params={"op": op.label, "limit": op.limit, "dtype": dtype, "shape": [tokens, width],
                                "fp8": asdict(spec)},
                    ))
    return workloads


KIND = GatedFp8Kind()
