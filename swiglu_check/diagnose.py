"""`diagnose`: which variant of the gated activation does a backend actually compute?

The backend (kind `gated`) runs on a few probe inputs. Its outputs are compared with a
family of candidate semantics derived from the asked op by changing one or two of its
fields (clamp pre / post / none, activation silu / gelu / gelu_tanh, layout, alpha and
beta off by the gpt-oss values), each evaluated exactly in float64 and, for the asked op
and its single-field variants, also through the rounding recipes of
`references/gated.py` (fused, round-act, eager) in the dtype.

A candidate's distance on one probe is `||out - candidate|| / ||round(exact) - exact||`:
the backend's deviation from the candidate in units of the rounding floor of the asked
op on that probe (for fp32, of fp32 arithmetic when that exceeds one rounding, as `run`
does). Its distance is the largest over the probes, so a candidate is far when any probe
says so. The exact candidate of the right op sits near 1.0 (1.2-1.4 with an extra
rounding); a recipe candidate that reproduces the backend's rounding sits at 0.

The probes, and what each one separates:

- `clamp`: Gaussian inputs scaled so that 30% of the gates exceed the asked limit,
  called at that limit (unit Gaussians for an unclamped op). Separates a missing clamp,
  the layout, alpha, beta, and SiLU from GELU. It cannot separate the pre from the post
  clamp at large limits (`min(act(gate), L)` differs from `act(min(gate, L))` by
  `L - silu(L)`, about `L*exp(-L)`: 0.0064 at L = 7, under one bf16 rounding) nor erf
  from tanh GELU (about 1/20 of a bf16 rounding on unit Gaussians).
- `gelu-tail`: gates uniform in [-3.5, -2.5] (divided by alpha), ups N(0, 1), at the
  asked limit. There `1 + erf` and `1 + tanh` are small and the tanh approximation's
  relative error is 3% to 24%: erf and tanh GELU differ by about 35 bf16 rounding floors
  (about 280 in fp16). Measured: gates in [-5, -2] give only about 12, because rel-L2 is
  dominated by the largest outputs (near -2, where the two agree best); below about -4
  fp32 kernels lose accuracy to the cancellation in `1 + erf` (1.11 floors in fp16 at
  [-4, -3]), so the tail is not pushed further out.
- `probe-limit` (clamped ops only): Gaussian inputs at limit 1 (2 when the asked limit is
  1), the backend called with that limit. The pre and post clamps differ there by
  `1 - silu(1) = 0.27` (about 240 bf16 rounding floors). When the backend does not
  accept that limit the probe is skipped, and the result says which candidates the
  remaining probes cannot separate, rather than picking one.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from swiglu_check.references import gated as ref

from . import dtypes as dt
from .backends import REGISTRY, Backend
from .errors import EXIT_FAIL, BackendUnavailable, InputError
from .inputs import InputSpec, gated_input, gaussian, uniform
from .kinds.gated import output_problem
from .metrics import ratio
from .ops import ACTIVATIONS, LAYOUTS, PRESETS, OpSpec, _num
from .settings import DEFAULT_MAX_FLOOR_RATIO, parse_shape, resolve_device

DEFAULT_SHAPE = (64, 1024)
PROBE_LIMIT = 1.0
PROBE_LIMIT_WHEN_ASKED_IS_1 = 2.0
GELU_TAIL = (-3.5, -2.5)
EXACT = "exact"
RECIPE_ORDER = ("fused", "round-act", "eager")
_REALIZATION_RANK = {name: i for i, name in enumerate((*RECIPE_ORDER, EXACT))}
# A variant ties with the top one when its exact candidate's distance is at most
# FACTOR * (the top variant's exact distance) + SLACK rounding floors. A fused kernel of
# variant A sits about 1.0 from A's exact result and about sqrt(1 + m^2) from that of a
# variant B differing from A by m floors, so B counts as separated from about m = 1.4 on.
AMBIGUOUS_FACTOR = 1.5
AMBIGUOUS_SLACK = 0.25
# Two variants whose exact results differ by less than this many rounding floors on every
# probe cannot be told apart by any kernel's output in this dtype.
SEPARABLE_FLOORS = 1.5
_GPT_OSS = PRESETS["gpt-oss"]
ACTIVATION_WORDS = {"silu": "SiLU", "gelu": "erf GELU", "gelu_tanh": "tanh GELU"}


@dataclass(frozen=True)
class Variant:
    """One candidate semantics: the asked op with `changes` applied. `op.limit` is the
    asked limit, or None for 'clamp not applied'; at a probe limit it follows the call."""

    op: OpSpec
    changes: tuple[str, ...] = ()

    def at(self, limit: float | None) -> OpSpec:
        return self.op if self.op.limit is None else self.op.with_limit(limit)


@dataclass(frozen=True)
class Candidate:
    variant: Variant
    realization: str  # EXACT (float64) or a recipe name


@dataclass
class Probe:
    name: str
    limit: float | None  # the limit the backend is called with
    purpose: str
    x: torch.Tensor


@dataclass
class ProbeReport:
    name: str
    limit: float | None
    purpose: str
    elements: int
    ran: bool = False
    skipped: str = ""
    floor: float | None = None  # rel-L2 of the asked op's exact result rounded once
    nonfinite: int = 0  # backend outputs that are NaN/Inf where the asked op is finite

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "limit": self.limit, "purpose": self.purpose, "elements": self.elements,
            "ran": self.ran, "skipped": self.skipped, "floor": _finite_or_none(self.floor),
            "nonfinite": self.nonfinite,
        }


@dataclass
class CandidateScore:
    op: OpSpec
    realization: str
    changes: tuple[str, ...]
    differences: list[str]
    distance: float  # the largest per-probe distance, in rounding floors
    per_probe: dict[str, float]

    @property
    def label(self) -> str:
        return "; ".join(self.differences) or "the asked op"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "op": self.op.to_dict(), "realization": self.realization,
            "changes": list(self.changes), "differences": self.differences,
            "distance": _finite_or_none(self.distance),
            "per_probe": {k: _finite_or_none(v) for k, v in self.per_probe.items()},
        }


@dataclass
class Diagnosis:
    """The ranked candidates, the best match and its description in words."""

    backend: str
    asked: OpSpec
    asked_name: str
    dtype: str
    shape: tuple[int, int]
    seed: int
    device: str
    max_floor_ratio: float
    probes: list[ProbeReport] = field(default_factory=list)
    candidates: list[CandidateScore] = field(default_factory=list)  # best first
    best: CandidateScore | None = None
    differences: list[str] = field(default_factory=list)  # of the best match from the asked op
    rounding: str = ""
    floor_ratio: float | None = None  # the best variant's exact distance: its floor ratio, worst probe
    indistinguishable: list[str] = field(default_factory=list)
    matches_asked: bool = False
    within_rounding: bool = False
    sentence: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""
    details: str = ""  # traceback of a backend failure, for the JSON report

    @property
    def exit_code(self) -> int:
        """0 when the best match is the asked op within rounding, else 1."""
        return 0 if not self.error and self.matches_asked and self.within_rounding else EXIT_FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "swiglu-check/diagnose", "version": 1,
            "backend": self.backend, "asked": self.asked.to_dict(), "asked_name": self.asked_name,
            "dtype": self.dtype, "shape": list(self.shape), "seed": self.seed, "device": self.device,
            "max_floor_ratio": self.max_floor_ratio,
            "sentence": self.sentence, "exit_code": self.exit_code, "error": self.error,
            "matches_asked": self.matches_asked, "within_rounding": self.within_rounding,
            "differences": self.differences, "rounding": self.rounding,
            "floor_ratio": _finite_or_none(self.floor_ratio),
            "indistinguishable": self.indistinguishable, "notes": self.notes,
            "best": self.best.to_dict() if self.best else None,
            "probes": [p.to_dict() for p in self.probes],
            "candidates": [c.to_dict() for c in self.candidates],
            "details": self.details,
        }


class _BackendBroken(Exception):
    """The backend's output cannot be compared at all (wrong shape, dtype, device)."""


# ----------------------------------------------------------------------------- candidates


def _alternatives(asked: OpSpec) -> dict[str, list[dict[str, Any]]]:
    """For each field, the replacement values worth trying."""
    alternatives: dict[str, list[dict[str, Any]]] = {
        "activation": [{"activation": a} for a in ACTIVATIONS if a != asked.activation],
    }
    if asked.clamped:
        alternatives["clamp"] = [{"clamp": "post" if asked.clamp == "pre" else "pre"}, {"limit": None}]
    alternatives["layout"] = [{"layout": layout} for layout in LAYOUTS if layout != asked.layout]
    alternatives["alpha"] = [{"alpha": a} for a in (1.0, _GPT_OSS.alpha) if a != asked.alpha]
    alternatives["beta"] = [{"beta": b} for b in (0.0, _GPT_OSS.beta) if b != asked.beta]
    return alternatives


def variants(asked: OpSpec) -> list[Variant]:
    """The asked op, every single-field change and every two-field change."""
    alternatives = _alternatives(asked)
    fields = list(alternatives)
    found = [Variant(asked)]
    for name in fields:
        found += [Variant(replace(asked, **change), (name,)) for change in alternatives[name]]
    for i, first in enumerate(fields):
        for second in fields[i + 1:]:
            for a in alternatives[first]:
                for b in alternatives[second]:
                    found.append(Variant(replace(asked, **a, **b), (first, second)))
    return found


def candidates(asked: OpSpec) -> list[Candidate]:
    """Every variant exactly; the asked op and single changes also through each recipe."""
    family = variants(asked)
    exact = [Candidate(v, EXACT) for v in family]
    recipes = [Candidate(v, r) for v in family if len(v.changes) <= 1 for r in RECIPE_ORDER]
    return exact + recipes


def realize(x: torch.Tensor, candidate: Candidate, limit: float | None) -> torch.Tensor:
    """The candidate's output on x (called at `limit`), as float64."""
    op = candidate.variant.at(limit)
    if candidate.realization == EXACT:
        return ref.exact(x, op)
    return ref.RECIPES[candidate.realization](x, op).to(torch.float64)


# ----------------------------------------------------------------------------- words


def differences(asked: OpSpec, op: OpSpec) -> list[str]:
    """How `op` differs from `asked`, in words a kernel engineer uses."""
    words = []
    if asked.clamped and op.limit is None:
        words.append("clamp not applied")
    elif asked.clamped and op.clamp != asked.clamp:
        words.append(
            "post-activation clamp (min(act(gate), L)) instead of clamping the inputs"
            if op.clamp == "post"
            else "clamps the inputs where the post-activation clamp min(act(gate), L) was asked"
        )
    if op.activation != asked.activation:
        if {op.activation, asked.activation} == {"gelu", "gelu_tanh"}:
            words.append(
                "uses tanh GELU where erf was asked" if op.activation == "gelu_tanh"
                else "uses erf GELU where tanh was asked"
            )
        else:
            words.append(f"uses {ACTIVATION_WORDS[op.activation]} where {ACTIVATION_WORDS[asked.activation]} was asked")
    if op.layout != asked.layout:
        words.append(f"reads {asked.layout} input as {op.layout}")
    if op.alpha != asked.alpha:
        words.append(
            f"alpha {_num(asked.alpha)} missing" if op.alpha == 1.0
            else f"alpha {_num(op.alpha)} where {_num(asked.alpha)} was asked"
        )
    if op.beta != asked.beta:
        if op.beta == 0.0:
            words.append(f"beta (up + {_num(asked.beta)}) missing")
        elif asked.beta == 0.0:
            words.append(f"adds beta to up (up + {_num(op.beta)}) where none was asked")
        else:
            words.append(f"beta {_num(op.beta)} where {_num(asked.beta)} was asked")
    return words


def _pair_words(a: OpSpec, b: OpSpec) -> str:
    """What tells two ops apart, e.g. 'pre and post clamp'."""
    parts = []
    if (a.limit is None) != (b.limit is None):
        parts.append("clamped and unclamped")
    elif a.clamped and a.clamp != b.clamp:
        parts.append(f"{a.clamp} and {b.clamp} clamp")
    if a.activation != b.activation:
        parts.append(f"{ACTIVATION_WORDS[a.activation]} and {ACTIVATION_WORDS[b.activation]}")
    if a.layout != b.layout:
        parts.append(f"{a.layout} and {b.layout} layouts")
    if a.alpha != b.alpha:
        parts.append(f"alpha {_num(a.alpha)} and {_num(b.alpha)}")
    if a.beta != b.beta:
        parts.append(f"beta {_num(a.beta)} and {_num(b.beta)}")
    return " with ".join(parts) or "the two variants"


def rounding_words(recipe: str, dtype: str) -> str:
    if recipe == "fused":
        return "computes in fp32 and rounds once" if dtype != "fp32" else "computes in fp32"
    if recipe == "round-act":
        return f"rounds the activation to {dtype} before the product"
    if recipe == "eager":
        return f"rounds every op to {dtype}"
    raise ValueError(f"unknown recipe {recipe!r}")


def op_name(op: OpSpec, preset_name: str | None = None) -> str:
    """The op named after a preset (`preset_name`, the one it was built from, else the
    nearest): 'gpt-oss', 'deepseek-v4 with L=7', 'deepseek-v4 with activation=gelu';
    'the asked op (formula)' when more than two fields differ."""
    def changed(spec: OpSpec) -> list[str]:
        parts = [f"{name}={getattr(op, name)}" for name in ("activation", "layout")
                 if getattr(op, name) != getattr(spec, name)]
        parts += [f"{name}={_num(getattr(op, name))}" for name in ("alpha", "beta")
                  if getattr(op, name) != getattr(spec, name)]
        if op.clamped and op.clamp != spec.clamp:
            parts.append(f"clamp={op.clamp}")
        if op.limit != spec.limit:
            parts.append(f"L={_limit_text(op.limit)}")
        return parts

    def family(activation: str) -> str:
        return "gelu" if activation.startswith("gelu") else activation

    nearest = preset_name if preset_name in PRESETS else min(
        PRESETS,
        key=lambda name: (len(changed(PRESETS[name])), family(PRESETS[name].activation) != family(op.activation)),
    )
    parts = changed(PRESETS[nearest])
    if not parts:
        return nearest
    if len(parts) <= 2:
        return f"{nearest} with {', '.join(parts)}"
    return f"the asked op ({op.describe()})"


# ----------------------------------------------------------------------------- probes


def build_probes(asked: OpSpec, dtype: torch.dtype, tokens: int, width: int, seed: int,
                 device: str) -> list[Probe]:
    """The probe inputs (module docstring: what each one separates)."""
    main = gated_input(tokens, width, dtype=dtype, limit=asked.limit, spec=InputSpec(), seed=seed, device=device)
    low, high = GELU_TAIL
    gates = uniform(tokens, width, low=low, high=high, seed=seed + 1, dtype=torch.float32) / asked.alpha
    ups = gaussian(tokens, width, scale=1.0, seed=seed + 2, dtype=torch.float32)
    tail = _join(gates, ups, asked.layout).to(dtype=dtype, device=device)
    probes = [
        Probe("clamp" if asked.clamped else "gaussian", asked.limit,
              "clamp applied, layout, alpha, beta, SiLU vs GELU", main),
        Probe("gelu-tail", asked.limit, f"erf vs tanh GELU (gates in [{low:g}, {high:g}])", tail),
    ]
    if asked.clamped:
        limit = PROBE_LIMIT if asked.limit != PROBE_LIMIT else PROBE_LIMIT_WHEN_ASKED_IS_1
        x = gated_input(tokens, width, dtype=dtype, limit=limit, spec=InputSpec(), seed=seed + 3, device=device)
        probes.append(Probe("probe-limit", limit, f"pre vs post clamp (called with L={_num(limit)})", x))
    return probes


def _join(gate: torch.Tensor, up: torch.Tensor, layout: str) -> torch.Tensor:
    """The `[T, 2D]` input whose gate and up halves (per the layout) are the given ones."""
    if layout == "halves":
        return torch.cat([gate, up], dim=-1)
    return torch.stack([gate, up], dim=-1).reshape(gate.shape[0], -1)


def _run_probe(
    backend: Backend, probe: Probe, asked: OpSpec, dtype: str, device: str
) -> tuple[torch.Tensor | None, str]:
    """The backend's output on one probe (on the CPU), or None and why the backend does
    not take this probe's op. Raises _BackendRaised or _BackendBroken."""
    call_op = asked.with_limit(probe.limit)
    device_type = torch.device(device).type
    try:
        ok, why = backend.supports(dtype, device_type, call_op)
    except Exception as exc:
        ok, why = False, f"its support check raised {_one_line(exc)}"
    if not ok:
        return None, f"backend does not support L={_limit_text(probe.limit)}: {why}"
    try:
        output = backend.call(probe.x, call_op)
        if device_type == "cuda":
            torch.cuda.synchronize(device)
    except Exception as exc:
        raise _BackendRaised(
            f"backend raised {_one_line(exc)} on the {probe.name} probe (L={_limit_text(probe.limit)})",
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        ) from None
    problem = output_problem(output, (probe.x.shape[0], probe.x.shape[1] // 2), probe.x.dtype, probe.x.device)
    if problem:
        raise _BackendBroken(f"{problem} (on the {probe.name} probe)")
    return output.detach().to("cpu"), ""


class _BackendRaised(Exception):
    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


# ----------------------------------------------------------------------------- scoring


def _floor_unit(x: torch.Tensor, op: OpSpec, exact: torch.Tensor) -> float:
    """||round(exact) - exact||: one rounding of the asked op, the unit of distances. For
    fp32, the error of plain fp32 arithmetic when larger (as `run`'s floor)."""
    sq = _sq_norm(exact.to(x.dtype).to(torch.float64) - exact)
    if x.dtype == torch.float32:
        sq = max(sq, _sq_norm(ref.fused(x, op).to(torch.float64) - exact))
    return math.sqrt(sq)


def _sq_norm(t: torch.Tensor) -> float:
    """Sum of squares over the finite entries."""
    flat = t.reshape(-1)
    if not bool(torch.isfinite(flat).all()):
        flat = torch.where(torch.isfinite(flat), flat, 0.0)
    return float(torch.dot(flat, flat).item())


def _distance(out: torch.Tensor, out_finite: torch.Tensor, value: torch.Tensor, unit: float) -> float:
    """||out - value|| / unit over finite positions; inf when out is NaN/Inf where value is not."""
    finite = torch.isfinite(value)
    if not bool(finite.all()) or not bool(out_finite.all()):
        if bool((finite & ~out_finite).any()):
            return math.inf
        return ratio(math.sqrt(_sq_norm(torch.where(finite & out_finite, out - value, 0.0))), unit)
    return ratio(math.sqrt(_sq_norm(out - value)), unit)


def _ulp(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of `dtype` at each value (float64), subnormals included."""
    info = torch.finfo(dtype)
    magnitude = values.to(dtype).to(torch.float64).abs()
    exponent = torch.floor(torch.log2(magnitude.clamp(min=info.tiny)))
    return torch.clamp(torch.exp2(exponent) * info.eps, min=info.tiny * info.eps)


@dataclass
class _Ran:
    probe: Probe
    x: torch.Tensor  # the probe input on the CPU


def _separation(a: Variant, b: Variant, ran: list[_Ran], dtype: torch.dtype) -> tuple[float, float]:
    """(rounding floors of a, ULPs): the largest gap between two variants' exact results
    over the probes."""
    floors = ulps = 0.0
    for item in ran:
        op_a = a.at(item.probe.limit)
        ea = ref.exact(item.x, op_a)
        eb = ref.exact(item.x, b.at(item.probe.limit))
        floors = max(floors, ratio(math.sqrt(_sq_norm(ea - eb)), _floor_unit(item.x, op_a, ea)))
        gap = ((ea - eb).abs() / _ulp(ea, dtype))[torch.isfinite(ea) & torch.isfinite(eb)]
        if gap.numel():
            ulps = max(ulps, float(gap.max().item()))
    return floors, ulps


# ----------------------------------------------------------------------------- the API


def diagnose(
    backend: str | Backend,
    op: str | OpSpec = "deepseek-v4",
    *,
    dtype: str = "bf16",
    shape: tuple[int, int] | str = DEFAULT_SHAPE,
    seed: int = 0,
    device: str = "cpu",
    max_floor_ratio: float = DEFAULT_MAX_FLOOR_RATIO,
    preset_name: str | None = None,
) -> Diagnosis:
    """Run `backend` on the probes and rank the candidate semantics by their distance
    to its outputs. `op` is a preset name or an OpSpec (`preset_name`: the preset it was
    built from, for the sentence). Bad input raises InputError; a backend that raises or
    returns an unusable output gives a Diagnosis with `error` set (exit code 1)."""
    chosen = _resolve_backend(backend)
    if isinstance(op, str):
        asked, preset_name = PRESETS.get(op) or _unknown_op(op), op
    else:
        asked = OpSpec(**op.to_dict())
    dtype = dt.canonical(dtype)
    tokens, width = parse_shape(shape) if isinstance(shape, str) else (int(shape[0]), int(shape[1]))
    if tokens <= 0 or width <= 0:
        raise InputError(f"diagnose needs a non-empty shape, got {tokens}x{width}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not (math.isfinite(max_floor_ratio) and max_floor_ratio >= 1.0):
        raise InputError(f"max floor ratio must be a finite number >= 1, got {max_floor_ratio}")
    device = resolve_device(device)
    ok, why = chosen.supports(dtype, torch.device(device).type, asked)
    if not ok:
        raise InputError(f"backend {chosen.name!r} cannot run this op: {why}")

    result = Diagnosis(chosen.name, asked, op_name(asked, preset_name), dtype, (tokens, width), seed, device,
                       max_floor_ratio)
    torch_dtype = dt.to_torch(dtype)
    probes = build_probes(asked, torch_dtype, tokens, width, seed, device)
    result.probes = [ProbeReport(p.name, p.limit, p.purpose, tokens * width) for p in probes]
    outputs: list[tuple[Probe, ProbeReport, torch.Tensor]] = []
    for index, (probe, report) in enumerate(zip(probes, result.probes)):
        try:
            output, skipped = _run_probe(chosen, probe, asked, dtype, device)
        except _BackendRaised as exc:
            # on an extra probe (another limit, other inputs) a backend may refuse: skip it;
            # on the main probe, the asked op itself failed: nothing to diagnose
            output, skipped = None, str(exc)
            result.details = exc.details
        except _BackendBroken as exc:
            result.error = str(exc)
            break
        if output is None:
            report.skipped = skipped
            result.notes.append(f"{probe.name} probe skipped: {skipped}")
            if index == 0:
                result.error = skipped
                break
        else:
            report.ran = True
            outputs.append((probe, report, output))
    if result.error:
        result.sentence = f"could not diagnose {chosen.name}: {result.error}"
        return result
    if chosen.interpreted(torch.device(device).type):
        result.notes.append(
            f"{chosen.name} runs through the Triton interpreter on {device}: its fp32 -> bf16 stores"
            " truncate unless the kernel rounds itself (DESIGN.md section 5), which no recipe models"
        )
    ran = _score(result, asked, outputs)
    _decide(result, asked, ran, torch_dtype)
    return result


def _score(result: Diagnosis, asked: OpSpec, outputs: list[tuple[Probe, ProbeReport, torch.Tensor]]) -> list[_Ran]:
    """Every candidate's distance on every probe that ran, in units of the rounding floor
    of the candidate's own variant (so an exact candidate's distance is the floor ratio
    `run` would show were that variant asked); fills `result.candidates`, ranked."""
    family = candidates(asked)
    by_variant: dict[Variant, list[int]] = {}
    for index, candidate in enumerate(family):
        by_variant.setdefault(candidate.variant, []).append(index)
    per_probe: list[dict[str, float]] = [{} for _ in family]
    ran = []
    for probe, report, output in outputs:
        x = probe.x.to("cpu")
        ran.append(_Ran(probe, x))
        out = output.to(torch.float64)
        out_finite = torch.isfinite(out)
        for variant, indices in by_variant.items():
            op = variant.at(probe.limit)
            exact = ref.exact(x, op)
            unit = _floor_unit(x, op, exact)
            if variant.op == asked:
                report.floor = ratio(unit, math.sqrt(_sq_norm(exact)))
                report.nonfinite = int(torch.count_nonzero(~torch.isfinite(out) & torch.isfinite(exact)).item())
            for index in indices:
                value = exact if family[index].realization == EXACT else realize(x, family[index], probe.limit)
                per_probe[index][probe.name] = _distance(out, out_finite, value, unit)
        if report.nonfinite:
            result.notes.append(f"the backend returned {report.nonfinite} NaN/Inf value(s) on the {probe.name} probe"
                                " where the asked op is finite")
    scored = [
        CandidateScore(c.variant.op, c.realization, c.variant.changes, differences(asked, c.variant.op),
                       max(scores.values()), scores)
        for c, scores in zip(family, per_probe)
    ]
    scored.sort(key=lambda s: (s.distance, len(s.changes), _REALIZATION_RANK[s.realization]))
    result.candidates = scored
    return ran


def _decide(result: Diagnosis, asked: OpSpec, ran: list[_Ran], dtype: torch.dtype) -> None:
    """The best match, its differences, its rounding, and what the probes cannot separate.

    Variants are ranked by their best realization (a recipe reproducing the backend bit
    for bit beats everything), but whether two variants can be told apart is judged on
    their exact candidates only: a kernel that is bit-identical to one recipe would sit a
    fraction of a floor from the other variant's recipe too were its libm a little
    different, so a recipe's bits are no evidence about the math."""
    best_of: dict[OpSpec, CandidateScore] = {}
    exact_of: dict[OpSpec, CandidateScore] = {}
    for score in result.candidates:  # ranked: the first seen per variant is its best realization
        best_of.setdefault(score.op, score)
        if score.realization == EXACT:
            exact_of[score.op] = score
    top = next(iter(best_of.values()))
    cutoff = AMBIGUOUS_FACTOR * exact_of[top.op].distance + AMBIGUOUS_SLACK
    tied = [op for op in best_of if exact_of[op].distance <= cutoff]
    # When the evidence cannot separate the asked op from the top variant, keep the asked
    # op as the match (and say so below) rather than pick one of the two at random.
    best = best_of[asked] if asked in tied else top
    result.best = best
    result.differences = best.differences
    result.matches_asked = best.op == asked
    result.within_rounding = best.distance <= result.max_floor_ratio
    result.floor_ratio = exact_of[best.op].distance
    result.rounding = _rounding(result, best, exact_of[best.op])
    if result.within_rounding:
        limits = list(dict.fromkeys(f"L={_limit_text(r.probe.limit)}" for r in ran if r.probe.limit is not None))
        where = ", ".join([result.dtype, *limits])
        for op in tied:
            if op != best.op:
                result.indistinguishable.append(_tie_words(best.op, exact_of[best.op], exact_of[op], ran, dtype, where))
    result.sentence = _sentence(result)


def _tie_words(best_op: OpSpec, best: CandidateScore, other: CandidateScore, ran: list[_Ran],
               dtype: torch.dtype, where: str) -> str:
    floors, ulps = _separation(Variant(best_op), Variant(other.op), ran, dtype)
    pair = _pair_words(best_op, other.op)
    if floors < SEPARABLE_FLOORS:
        return (f"{pair} are indistinguishable at {where}: they differ by at most {ulps:.2g} ULP"
                f" ({floors:.2g} rounding floors in rel-L2)")
    return (f"{pair} fit about equally well ({best.distance:.2f} and {other.distance:.2f} rounding floors"
            f" from their exact results) though they differ by {floors:.2g} floors: the output matches neither cleanly")


def _rounding(result: Diagnosis, best: CandidateScore, exact_best: CandidateScore) -> str:
    fr = f"floor ratio {exact_best.distance:.2f} against the exact result"
    if best.realization == EXACT:
        return f"{fr}; no rounding recipe reproduces its output (about 1.0 is one rounding, 1.3 one extra)"
    same = [s.realization for s in result.candidates
            if s.op == best.op and s.realization not in (EXACT, best.realization) and s.distance == best.distance]
    how = "bit for bit" if best.distance == 0.0 else f"{best.distance:.2g} rounding floors off"
    also = f"; {', '.join(same)} give{'s' if len(same) == 1 else ''} the same output" if same else ""
    return f"{rounding_words(best.realization, result.dtype)} (the {best.realization} recipe, {how}{also}; {fr})"


def _sentence(result: Diagnosis) -> str:
    best = result.best
    assert best is not None
    what = result.asked_name + (f" except: {', '.join(result.differences)}" if result.differences else "")
    if math.isinf(best.distance):
        where = ", ".join(p.name for p in result.probes if p.nonfinite)
        return f"matches no candidate: the output has NaN/Inf where every candidate is finite (probes: {where})"
    if not result.within_rounding:
        worst = max(best.per_probe, key=lambda name: best.per_probe[name])
        others = ", ".join(f"{v:.3g} on {k}" for k, v in best.per_probe.items() if k != worst)
        return (f"matches no candidate within rounding: the closest, {what}, is {best.distance:.3g}"
                f" rounding floors away on the {worst} probe{f' ({others})' if others else ''};"
                f" limit {result.max_floor_ratio:g}")
    return "; ".join([f"matches {what}", result.rounding, *result.indistinguishable])


# ----------------------------------------------------------------------------- helpers


def _resolve_backend(backend: str | Backend) -> Backend:
    if isinstance(backend, Backend):
        ok, why = backend.available()
        if not ok:
            raise BackendUnavailable(f"backend {backend.name!r} is unavailable: {why}")
        chosen = backend
    else:
        chosen = REGISTRY.resolve([backend])[0]
    if chosen.kind != "gated":
        raise InputError(f"diagnose works on backends of kind gated; {chosen.name!r} is of kind {chosen.kind}")
    return chosen


def _unknown_op(name: str) -> OpSpec:
    raise InputError(f"unknown op {name!r}; presets: {', '.join(PRESETS)}")


def _limit_text(limit: float | None) -> str:
    return "none" if limit is None else _num(limit)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else '(no message)'}"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
