"""Error metrics against an exact reference, accumulated over row chunks.

Every metric here is a running sum or maximum, so a case is measured chunk by chunk
without ever holding a full float64 copy of its data (bounded memory).

- rel-L2 = ||out - exact|| / ||exact||, over positions where both are finite;
- the rounding floor = rel-L2 of the *ideal* output (exact rounded once to the output
  dtype), and the floor ratio = rel-L2 / floor;
- ULP distance from the ideal output, in the output dtype (max and p99);
- NaN and Inf mismatches: positions where the output's and the reference's
  non-finite status differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .dtypes import ulp_distance

_EXACT_ULP_BINS = 1024  # ULP distances below this are counted exactly


def _sq_sum(t: torch.Tensor) -> float:
    return float(torch.sum(t * t).item()) if t.numel() else 0.0


@dataclass
class UlpHistogram:
    """Counts of ULP distances: exact below 1024, then one bucket per power of two."""

    exact: list[int] = field(default_factory=lambda: [0] * _EXACT_ULP_BINS)
    log2: list[int] = field(default_factory=lambda: [0] * 64)
    maximum: int = 0

    def add(self, distances: torch.Tensor) -> None:
        if distances.numel() == 0:
            return
        d = distances.reshape(-1)
        self.maximum = max(self.maximum, int(d.max().item()))
        small = d[d < _EXACT_ULP_BINS]
        counts = torch.bincount(small, minlength=_EXACT_ULP_BINS).tolist()
        self.exact = [a + b for a, b in zip(self.exact, counts)]
        large = d[d >= _EXACT_ULP_BINS]
        if large.numel():
            buckets = torch.floor(torch.log2(large.to(torch.float64))).to(torch.int64)
            for bucket, count in zip(*torch.unique(buckets, return_counts=True)):
                self.log2[int(bucket)] += int(count)

    def quantile(self, q: float) -> int:
        """The q-quantile; exact below 1024, the bucket's lower bound above."""
        total = sum(self.exact) + sum(self.log2)
        if total == 0:
            return 0
        rank = math.ceil(q * total)
        seen = 0
        for value, count in enumerate(self.exact):
            seen += count
            if seen >= rank:
                return value
        for bucket, count in enumerate(self.log2):
            seen += count
            if seen >= rank:
                return 1 << bucket
        return self.maximum


@dataclass
class Worst:
    """Where the largest absolute error was, to print a concrete example."""

    abs_error: float = 0.0
    index: int = -1
    output: float = 0.0
    exact: float = 0.0


@dataclass
class ErrorAccumulator:
    """Running error statistics of one output against its exact reference."""

    sq_err: float = 0.0
    sq_ref: float = 0.0
    sq_floor: float = 0.0
    count: int = 0
    nan_hidden: int = 0  # the reference is NaN, the output is not (e.g. an fminf-style clamp)
    nan_created: int = 0  # the output is NaN where the reference is not
    inf_mismatch: int = 0
    reference_nan: int = 0
    reference_inf: int = 0
    worst: Worst = field(default_factory=Worst)
    ulps: UlpHistogram | None = None

    def update(
        self,
        output: torch.Tensor,
        exact: torch.Tensor,
        ideal: torch.Tensor | None = None,
        *,
        offset: int = 0,
    ) -> None:
        """Add one chunk. `output` in any dtype, `exact` in float64, `ideal` = exact
        rounded to the output dtype (gives the floor and the ULP distances).

        NaN/Inf status is compared with the ideal when given (exact values that overflow
        the dtype are Inf there); errors are summed where all three are finite."""
        out64 = output.to(torch.float64).reshape(-1)
        ref = exact.reshape(-1)
        status = ideal.reshape(-1).to(torch.float64) if ideal is not None else ref
        out_nan, ref_nan = torch.isnan(out64), torch.isnan(status)
        self.nan_hidden += int(torch.count_nonzero(ref_nan & ~out_nan).item())
        self.nan_created += int(torch.count_nonzero(out_nan & ~ref_nan).item())
        out_inf, ref_inf = torch.isinf(out64), torch.isinf(status)
        inf_diff = (out_inf != ref_inf) | (out_inf & ref_inf & (torch.sign(out64) != torch.sign(status)))
        self.inf_mismatch += int(torch.count_nonzero(inf_diff & ~out_nan & ~ref_nan).item())
        self.reference_nan += int(torch.count_nonzero(ref_nan).item())
        self.reference_inf += int(torch.count_nonzero(ref_inf).item())

        ref_ok = torch.isfinite(ref) & torch.isfinite(status)
        finite = torch.isfinite(out64) & ref_ok
        diff = (out64 - ref)[finite]
        self.sq_err += _sq_sum(diff)
        self.sq_ref += _sq_sum(ref[ref_ok])
        self.count += int(finite.sum().item())
        if diff.numel():
            abs_diff = (out64 - ref).abs().masked_fill(~finite, -1.0)
            idx = int(torch.argmax(abs_diff).item())
            value = float(abs_diff[idx].item())
            if value > self.worst.abs_error:
                self.worst = Worst(value, offset + idx, float(out64[idx].item()), float(ref[idx].item()))
        if ideal is not None:
            ideal_flat = ideal.reshape(-1)
            self.sq_floor += _sq_sum((status - ref)[ref_ok])
            if output.dtype == ideal.dtype and output.is_floating_point():
                if self.ulps is None:
                    self.ulps = UlpHistogram()
                self.ulps.add(ulp_distance(output.reshape(-1)[finite], ideal_flat[finite]))

    @property
    def nan_mismatch(self) -> int:
        return self.nan_hidden + self.nan_created

    @property
    def rel_l2(self) -> float:
        return rel(self.sq_err, self.sq_ref)

    @property
    def max_abs(self) -> float:
        return self.worst.abs_error

    @property
    def floor(self) -> float:
        return rel(self.sq_floor, self.sq_ref)

    def summary(self, rows: int, width: int, *, floor: float | None = None, floor_kind: str = "round-once") -> dict[str, Any]:
        """The metrics every check kind reports for one `[rows, width]` output (the names
        `kinds.gated.decide` reads); `floor` replaces the accumulated one when given."""
        floor = self.floor if floor is None else floor
        worst_row, worst_col = divmod(self.worst.index, width) if self.worst.index >= 0 and width else (-1, -1)
        return {
            "elements": rows * width,
            "rel_l2": self.rel_l2,
            "max_abs": self.max_abs,
            "floor": floor,
            "floor_kind": floor_kind,
            "floor_ratio": ratio(self.rel_l2, floor),
            "ulp_max": self.ulps.maximum if self.ulps else 0,
            "ulp_p99": self.ulps.quantile(0.99) if self.ulps else 0,
            "nan_mismatch": self.nan_mismatch,
            "nan_hidden": self.nan_hidden,
            "nan_created": self.nan_created,
            "inf_mismatch": self.inf_mismatch,
            "reference_nan": self.reference_nan,
            "reference_inf": self.reference_inf,
            "worst_row": worst_row,
            "worst_col": worst_col,
            "worst_output": self.worst.output,
            "worst_exact": self.worst.exact,
        }


def rel(sq_num: float, sq_den: float) -> float:
    """sqrt(sq_num / sq_den) with the 0/0 = 0 and x/0 = inf conventions."""
    if sq_num == 0.0:
        return 0.0
    if sq_den == 0.0:
        return math.inf
    return math.sqrt(sq_num / sq_den)


def ratio(value: float, floor: float) -> float:
    """value / floor with 0/0 = 0 and x/0 = inf."""
    if value == 0.0:
        return 0.0
    if floor == 0.0:
        return math.inf
    return value / floor


def row_chunks(rows: int, bytes_per_row: int, budget_bytes: int) -> list[tuple[int, int]]:
    """Split `rows` into [start, stop) chunks whose temporaries fit in `budget_bytes`."""
    per_chunk = max(1, budget_bytes // max(bytes_per_row, 1))
    return [(start, min(rows, start + per_chunk)) for start in range(0, rows, per_chunk)] or [(0, 0)]
