"""Check kind `moe-w4a16`: the routed expert MLP on FP4 weights, with the clamped gated
activation between the two GEMMs (references/moe.py).

A backend is called as

    call(x, w13, w2, topk_weights, topk_ids, op, *, limit) -> y

x `[T, H]` bf16/fp16; w13 `FP4Weight [E, 2I, H]`, w2 `FP4Weight [E, H, I]`;
topk_weights float32 and topk_ids int64, both `[T, k]`; `op` the activation's OpSpec
*without* its limit, and the clamp limit as the required keyword `limit` (None for an
unclamped model): a backend that forgets it raises instead of silently running the
unclamped SwiGLU. y `[T, H]` in x's dtype.

Each case draws weights (W13 std 1/sqrt(H), W2 std 1/sqrt(I); for NVFP4 operating
points each expert's weights are scaled so that its global scale is 2^g), router logits
(softmax, top-k, renormalized), and activations scaled so that the target share of the
routed gate pre-activations (the GEMM1 outputs, measured on the exact reference) exceeds
the limit. It is judged against the exact float64 layer on the same dequantized
weights, with the gated kind's rules (`gated.decide`): FAIL on NaN/Inf mismatches or a
floor ratio above the limit, with the "clamp not applied" diagnosis when the output
matches the unclamped layer better; INCONCLUSIVE when the inputs hardly reach the clamp.
A sweep's operating points may add an absolute rel-L2 target. `other_clamp_power` says
how far the other clamp placement (a post-activation clamp for a pre clamp) would stand
out over the backend's error: for SiLU it is small at large limits, because
L - silu(L) = L * sigmoid(-L) is tiny (0.03 at L = 5, 6e-3 at L = 7, 5e-4 at L = 10).

The floor is the exact output rounded once. Under Triton's interpreter a bf16 cast
truncates (DESIGN.md section 5), so for interpreted bf16 rows the floor is that of the
ideal *interpreted* fused kernel: the activation and the output each truncated once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import torch

from swiglu_check.references import fp4, moe
from swiglu_check.references import gated as ref

from .. import dtypes as dt
from ..errors import InputError
from ..inputs import gaussian
from ..metrics import ErrorAccumulator, ratio
from ..ops import OpSpec, parse_limit
from ..results import ERROR, FAIL, CaseResult
from ..settings import RunSettings
from . import Column, InputCache, kind_shapes
from .format import fmt_coverage, fmt_num, fmt_ratio
from .gated import clamp_counts, clamp_warnings, decide, limit_text, output_problem
from .w4a16_common import (
    DTYPE_COLUMN, FORMAT_COLUMN, QUANT_COLUMN, WEIGHT_SEED_OFFSET, dtypes_of, formats_of,
    round_toward_zero_bf16,
)

NAME = "moe-w4a16"
CPU_SHAPES = ((32, 64, 32, 4, 2),)  # T x H x I x E x k; 2048 outputs (fewer are too few to judge)
GPU_SHAPES = ((16, 4096, 2048, 16, 6),)


@dataclass(frozen=True)
class Sweep:
    """Named operating points: every limit x (NVFP4 global scale exponent or MXFP4)."""

    shape: tuple[int, int, int, int, int]
    limits: tuple[float, ...]
    global_exps: tuple[int, ...]
    formats: tuple[str, ...] = fp4.FORMATS
    dtypes: tuple[str, ...] = ("bf16",)
    max_rel_l2: float | None = None


SWEEPS = {
    # DeepSeek-V4-Flash-like points (DESIGN.md: H 4096, I 2048, top-6, L 5..15, global
    # scales 2^-13..2^-9), 16 experts so it fits anywhere; the published cross-check of one
    # production backend measured rel-L2 0.003 to 0.007 there: the target is 0.003.
    "dsv4-flash": Sweep((64, 4096, 2048, 16, 6), (5.0, 7.0, 10.0, 15.0), (-13, -12, -11, -10, -9),
                        max_rel_l2=0.003),
    # the same points on tiny shapes, for CI (interpreted on a CPU)
    "dsv4-flash-ci": Sweep((32, 64, 32, 4, 2), (5.0, 7.0, 10.0, 15.0), (-13, -9), dtypes=("bf16", "fp16")),
}
_ID = re.compile(
    r"^(?P<label>[^/]+)/(?P<fmt>[^/]+)/(?P<dtype>[^/]+)/L(?P<limit>[^/]+)/(?P<t>\d+)x(?P<h>\d+)x(?P<i>\d+)"
    r"/e(?P<e>\d+)k(?P<k>\d+)(/g(?P<g>-?\d+))?/s(?P<seed>\d+)(/sc(?P<sc>[^/]+))?(/cf(?P<cf>[^/]+))?"
    r"(/tol(?P<tol>[^/]+))?$"
)


@dataclass(frozen=True)
class MoeCase:
    backend: str
    op: OpSpec
    format: str
    dtype: str
    tokens: int
    hidden: int
    inter: int
    experts: int
    top_k: int
    seed: int
    clamp_fraction: float
    global_exp: int | None = None  # NVFP4: every expert's global scale is 2**global_exp
    max_rel_l2: float | None = None  # an operating point's absolute target
    scale: float | None = None  # a forced scale of x (instead of calibrating the clamp fraction)

    kind = NAME

    @property
    def case_id(self) -> str:
        parts = [self.backend, self.op.label, self.format, self.dtype, f"L{limit_text(self.op.limit)}",
                 f"{self.tokens}x{self.hidden}x{self.inter}", f"e{self.experts}k{self.top_k}"]
        if self.global_exp is not None:
            parts.append(f"g{self.global_exp}")
        parts.append(f"s{self.seed}")
        if self.scale is not None:
            parts.append(f"sc{self.scale:g}")
        elif self.clamp_fraction != 0.30:
            parts.append(f"cf{self.clamp_fraction:g}")
        if self.max_rel_l2 is not None:
            parts.append(f"tol{self.max_rel_l2:g}")
        return "/".join(parts)

    def params(self) -> dict[str, Any]:
        return {
            "op": self.op.label, "limit": self.op.limit, "format": self.format, "dtype": self.dtype,
            "shape": [self.tokens, self.hidden, self.inter], "experts": self.experts, "top_k": self.top_k,
            "global_exp": self.global_exp, "seed": self.seed, "clamp_fraction": self.clamp_fraction,
            "max_rel_l2": self.max_rel_l2, "scale": self.scale,
        }


@dataclass
class Prepared:
    x: torch.Tensor
    w13: fp4.FP4Weight
    w2: fp4.FP4Weight
    routing: moe.Routing
    quant_rel_l2: float
    x_scale: float


def _fmt_g(value: Any) -> str:
    return "-" if value is None else f"2^{value}"


class MoeW4A16Kind:
    name = NAME
    sweeps = tuple(SWEEPS)

    columns = [
        FORMAT_COLUMN,
        DTYPE_COLUMN,
        Column("limit", lambda r: limit_text(r.params.get("limit"))),
        Column("TxHxI e/k", lambda r: "x".join(map(str, r.params.get("shape", []))) +
               f" {r.params.get('experts')}/{r.params.get('top_k')}"),
        Column("global", lambda r: _fmt_g(r.params.get("global_exp"))),
        Column("rel-L2", lambda r: fmt_num(r.metrics.get("rel_l2"))),
        Column("floor ratio", lambda r: fmt_ratio(r.metrics.get("floor_ratio"))),
        Column("clamp cov.", lambda r: fmt_coverage(r.metrics)),
        Column("disc. power", lambda r: fmt_ratio(r.metrics.get("discriminative_power"))),
        Column("unfused recipe", lambda r: fmt_num(r.metrics.get("recipe_rel_l2"))),
        QUANT_COLUMN,
    ]

    def cases(self, backend: Any, settings: RunSettings) -> list[MoeCase]:
        fraction, scale = settings.inputs.clamp_fraction, settings.inputs.scale
        if settings.sweep:
            sweep = SWEEPS[settings.sweep]
            t, h, i, e, k = sweep.shape
            op = settings.op
            return [
                MoeCase(backend.name, op.with_limit(limit), fmt, dtype, t, h, i, e, k, settings.seed, fraction,
                        g if fmt == "nvfp4" else None, sweep.max_rel_l2, scale)
                for fmt in formats_of(backend) if fmt in sweep.formats
                for dtype in dtypes_of(backend, sweep.dtypes)
                for limit in sweep.limits
                for g in (sweep.global_exps if fmt == "nvfp4" else (None,))
            ]
        default = GPU_SHAPES if settings.device_type == "cuda" else CPU_SHAPES
        cases = []
        for shape in kind_shapes(settings, 5, default):
            t, h, i, e, k = shape
            if not (1 <= k <= e) or h % 32 or i % 32:
                raise InputError(f"{NAME} shape {'x'.join(map(str, shape))}: need TxHxIxExK with 1 <= K <= E"
                                 " and H, I multiples of 32")
            cases += [
                MoeCase(backend.name, op, fmt, dtype, t, h, i, e, k, settings.seed, fraction, scale=scale)
                for op in settings.ops()
                for fmt in formats_of(backend)
                for dtype in dtypes_of(backend, settings.dtypes)
            ]
        return cases

    def parse_case_id(self, backend: str, rest: str) -> MoeCase:
        match = _ID.match(rest)
        if not match or match["fmt"] not in fp4.FORMATS:
            raise InputError(f"malformed {NAME} case id {backend}/{rest!r}")
        return MoeCase(
            backend, OpSpec.from_label(match["label"], parse_limit(match["limit"])), match["fmt"],
            dt.canonical(match["dtype"]), int(match["t"]), int(match["h"]), int(match["i"]), int(match["e"]),
            int(match["k"]), int(match["seed"]), float(match["cf"]) if match["cf"] else 0.30,
            int(match["g"]) if match["g"] is not None else None, float(match["tol"]) if match["tol"] else None,
            float(match["sc"]) if match["sc"] else None,
        )

    def prepare(self, case: MoeCase, settings: RunSettings, cache: InputCache) -> Prepared:
        key = (NAME, case.op, case.format, case.dtype, case.tokens, case.hidden, case.inter, case.experts,
               case.top_k, case.seed, case.clamp_fraction, case.global_exp, case.scale, settings.device)
        return cache.get(key, lambda: prepare_moe(case, settings.device))

    def invoke(self, backend: Any, case: MoeCase, prepared: Prepared) -> Any:
        p = prepared
        return backend.call(p.x, p.w13, p.w2, p.routing.weights, p.routing.ids, case.op.with_limit(None),
                            limit=case.op.limit)

    def judge(self, case: MoeCase, prepared: Prepared, output: Any, settings: RunSettings,
              backend: Any) -> CaseResult:
        x = prepared.x
        problem = output_problem(output, (case.tokens, case.hidden), x.dtype, x.device)
        if problem:
            return result_for(case, ERROR, [problem])
        interpreted = backend.interpreted(settings.device_type) and x.dtype == torch.bfloat16
        refs = references(prepared, case.op, interpreted)
        metrics = moe_metrics(output, refs, case)
        metrics["quant_rel_l2"] = prepared.quant_rel_l2
        metrics["x_scale"] = prepared.x_scale
        verdict, reasons = decide(metrics, case.op, settings.thresholds.floor_ratio_limit(case.dtype), settings)
        if case.max_rel_l2 is not None and metrics["rel_l2"] > case.max_rel_l2:
            verdict = FAIL
            reasons.append(f"rel-L2 {fmt_num(metrics['rel_l2'])} above this operating point's target"
                           f" {case.max_rel_l2:g}")
        return result_for(case, verdict, reasons, metrics, clamp_warnings(metrics, case.op, settings))

    def bench_workloads(self, backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
        from .moe_bench import moe_bench_workloads

        return moe_bench_workloads(backend, settings, shapes)


def result_for(case: MoeCase, verdict: str, reasons: list[str], metrics: dict[str, Any] | None = None,
               warnings: list[str] | None = None) -> CaseResult:
    return CaseResult(case_id=case.case_id, backend=case.backend, kind=NAME, params=case.params(),
                      verdict=verdict, reasons=reasons, metrics=metrics or {}, warnings=warnings or [])


_BASE_WEIGHTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # the last shape's, reused across cases


def seeded_expert_weights(case: MoeCase, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 W13 `[E, 2I, H]` and W2 `[E, H, I]` from the case's seed (drawn on the CPU once
    per seed and shape: a sweep's operating points share them)."""
    e, h, i = case.experts, case.hidden, case.inter
    key = (case.seed, e, h, i, device)
    if key not in _BASE_WEIGHTS:
        _BASE_WEIGHTS.clear()
        w13 = gaussian(e * 2 * i, h, scale=1 / math.sqrt(h), seed=case.seed + WEIGHT_SEED_OFFSET, dtype=torch.float32)
        w2 = gaussian(e * h, i, scale=1 / math.sqrt(i), seed=case.seed + 2 * WEIGHT_SEED_OFFSET, dtype=torch.float32)
        _BASE_WEIGHTS[key] = (w13.reshape(e, 2 * i, h).to(device), w2.reshape(e, h, i).to(device))
    return _BASE_WEIGHTS[key]


def quantize_experts(w: torch.Tensor, fmt: str, global_exp: int | None) -> tuple[fp4.FP4Weight, torch.Tensor]:
    """(FP4 weight `[E, N, K]`, the unquantized weights it encodes). For an NVFP4 operating
    point each expert is first scaled so that its global scale, amax / (6 * 448), is
    exactly 2**global_exp."""
    if fmt == "nvfp4" and global_exp is not None:
        target = 2.0**global_exp
        amax = w.abs().amax(dim=(1, 2), keepdim=True)
        w = w * (fp4.E2M1_MAX * fp4.E4M3_MAX * target / amax)
        return fp4.quantize(w, fmt, global_scale=target), w
    return fp4.quantize(w, fmt), w


def quantization_error(pairs: list[tuple[fp4.FP4Weight, torch.Tensor]]) -> float:
    """rel-L2 of the dequantized weights against the unquantized ones (one expert at a time)."""
    err = norm = 0.0
    for q, w in pairs:
        for e in range(w.shape[0]):
            w64 = w[e].to(torch.float64)
            err += float(torch.linalg.vector_norm(fp4.dequantize(q[e]) - w64)) ** 2
            norm += float(torch.linalg.vector_norm(w64)) ** 2
    return math.sqrt(err / norm) if norm else 0.0


def prepare_moe(case: MoeCase, device: str) -> Prepared:
    w13_f, w2_f = seeded_expert_weights(case, device)
    w13, w13_f = quantize_experts(w13_f, case.format, case.global_exp)
    w2, w2_f = quantize_experts(w2_f, case.format, case.global_exp)
    quant_error = quantization_error([(w13, w13_f), (w2, w2_f)])
    del w13_f, w2_f
    logits = gaussian(case.tokens, case.experts, scale=1.0, seed=case.seed + 3 * WEIGHT_SEED_OFFSET,
                      dtype=torch.float32, device=device)
    routing = moe.route(logits, case.top_k)
    x0 = gaussian(case.tokens, case.hidden, scale=1.0, seed=case.seed, dtype=torch.float32, device=device)
    scale = case.scale if case.scale is not None else input_scale(x0, w13, routing, case.op, case.clamp_fraction)
    x = (x0 * scale).to(dt.to_torch(case.dtype))
    return Prepared(x, w13, w2, routing, quant_error, scale)


def input_scale(x0: torch.Tensor, w13: fp4.FP4Weight, routing: moe.Routing, op: OpSpec, fraction: float) -> float:
    """The factor on x0 at which `fraction` of the routed gate pre-activations (exact
    GEMM1 outputs) exceed the limit; for an unclamped op, unit standard deviation."""
    gates = torch.cat([ref.split_gate_up(part.h, op.layout)[0].reshape(-1)
                       for part in moe.expert_passes(x0, w13, None, routing)])
    if op.limit is None:
        std = float(gates.std()) if gates.numel() > 1 else 1.0
        return 1.0 / std if std > 0 else 1.0
    quantile = float(torch.quantile(gates.float().cpu(), 1.0 - fraction))
    return op.limit / quantile if quantile > 0 else 1.0


@dataclass
class References:
    exact: torch.Tensor  # float64 [T, H]
    unclamped: torch.Tensor
    post_clamp: torch.Tensor  # the same limit applied after the activation (a distinct op)
    recipe: torch.Tensor  # unfused engine, x's dtype
    ideal: torch.Tensor  # the ideal kernel's output (x's dtype)
    floor_kind: str
    gate_above: int
    up_outside: int
    gate_elements: int


def references(p: Prepared, op: OpSpec, interpreted_bf16: bool) -> References:
    """Every reference output in one pass over the experts (one dequantization each)."""
    shape = (p.x.shape[0], p.w2.shape[-2])
    exact = torch.zeros(shape, dtype=torch.float64, device=p.x.device)
    unclamped, post, recipe, ideal_acc = (torch.zeros_like(exact) for _ in range(4))
    post_op = replace(op, clamp="post" if op.clamp == "pre" else "pre")
    above = outside = elements = 0
    for part in moe.expert_passes(p.x, p.w13, p.w2, p.routing):
        act = ref.exact(part.h, op)
        moe.combine(exact, part, act @ part.w2.T, p.routing)
        if op.clamped:
            moe.combine(unclamped, part, ref.exact(part.h, op, apply_clamp=False) @ part.w2.T, p.routing)
            moe.combine(post, part, ref.exact(part.h, post_op) @ part.w2.T, p.routing)
            a, o = clamp_counts(part.h, op)
            above, outside, elements = above + a, outside + o, elements + part.h.shape[0] * part.h.shape[1] // 2
        recipe_act = ref.fused(part.h.to(p.x.dtype), op).to(torch.float64)
        moe.combine(recipe, part, recipe_act @ part.w2.T, p.routing)
        if interpreted_bf16:
            moe.combine(ideal_acc, part, round_toward_zero_bf16(act).to(torch.float64) @ part.w2.T, p.routing)
    if interpreted_bf16:
        ideal, floor_kind = round_toward_zero_bf16(ideal_acc), "fused, activation and output truncated (interpreter)"
    else:
        ideal, floor_kind = exact.to(p.x.dtype), "round-once"
    return References(exact, unclamped, post, recipe.to(p.x.dtype), ideal, floor_kind, above, outside, elements)


def moe_metrics(output: torch.Tensor, refs: References, case: MoeCase) -> dict[str, Any]:
    """The gated kind's metrics (so `gated.decide` applies), on the layer's output."""
    acc = ErrorAccumulator()
    acc.update(output, refs.exact, refs.ideal)
    metrics = acc.summary(case.tokens, case.hidden, floor_kind=refs.floor_kind)
    recipe = ErrorAccumulator()
    recipe.update(refs.recipe, refs.exact)
    metrics["recipe_rel_l2"] = recipe.rel_l2
    if case.op.clamped:
        missing = ErrorAccumulator()
        missing.update(refs.unclamped.to(output.dtype), refs.exact)
        versus = ErrorAccumulator()
        versus.update(output, refs.unclamped)
        n = refs.gate_elements
        metrics.update(
            gate_above=refs.gate_above / n if n else 0.0,
            up_outside=refs.up_outside / n if n else 0.0,
            missing_clamp_rel_l2=missing.rel_l2,
            missing_clamp_ratio=ratio(missing.rel_l2, metrics["floor"]),
            rel_l2_vs_unclamped=versus.rel_l2,
            discriminative_power=ratio(missing.rel_l2, metrics["rel_l2"]),
        )
        other = ErrorAccumulator()  # would the other clamp placement (pre <-> post) show?
        other.update(refs.post_clamp.to(output.dtype), refs.exact)
        metrics["other_clamp_power"] = ratio(other.rel_l2, metrics["rel_l2"])
    return metrics


KIND = MoeW4A16Kind()
