"""Shared part of scripts/cuda_tune.py and scripts/triton_tune.py: time candidate launch
configurations of one kernel at the issues' bench shapes with `swiglu-check bench`'s own
timing (`bench.measure`: both methods, the 1 GiB copy and a same-size copy per row), and
print one table per shape plus the best candidate per shape against a reference backend.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

ISSUE_SHAPES = [(t, d) for t in (1024, 16384) for d in (2048, 7168, 18432)]
METHODS = ("events", "graph")


def require_gpu(script: str) -> None:
    """Exit 2 with one line when there is no CUDA GPU (before any heavy import or work)."""
    import torch

    if not torch.cuda.is_available():
        print(f"{script}: needs a CUDA GPU and none is available (torch.cuda.is_available() is False)",
              file=sys.stderr)
        sys.exit(2)


@dataclass
class Candidate:
    name: str
    call: Callable[[Any], Any]  # x -> output(s)
    reference: bool = False  # the backend every other row is compared with
    mine: bool = True  # a configuration of the kernel being tuned (the others are references)


def parse_shapes(texts: list[str] | None) -> list[tuple[int, int]]:
    if not texts:
        return ISSUE_SHAPES
    return [tuple(int(v) for v in text.lower().split("x")) for text in texts]  # type: ignore[misc]


def sweep(candidates: Callable[[int, int], list[Candidate]], shapes: list[tuple[int, int]], bytes_for:
          Callable[[int, int, int], int], methods: tuple[str, ...] = METHODS, op_name: str = "deepseek-v4",
          device: str = "cuda") -> dict:
    """Time every candidate at every shape by every method; returns the rows as dicts."""
    import torch

    from swiglu_check import api, bench
    from swiglu_check.kinds.gated import bench_inputs

    settings = api.build_settings(op=op_name, dtypes=["bf16"], device=device)
    op = settings.op
    copy_bps = bench.copy_bandwidth(settings.device)  # one reference (events) for both methods
    copy = {m: copy_bps for m in methods}
    copies = bench.SameSizeCopies(lambda nbytes, how: bench.time_copy(nbytes, settings.device, how))
    name = torch.cuda.get_device_name() if settings.device.startswith("cuda") else settings.device
    result: dict = {"device": name, "op": op.label, "methods": list(methods),
                    "copy_gb_per_s": {m: v / 1e9 for m, v in copy.items()}, "rows": []}
    for tokens, width in shapes:
        xs = bench_inputs(tokens, width, "bf16", op, settings)
        nbytes = bytes_for(tokens, width, xs[0].element_size())
        for candidate in candidates(tokens, width):
            workload = bench.Workload(backend=candidate.name, label=f"bf16 {tokens}x{width}",
                                      call=lambda i, c=candidate: c.call(xs[i]), bytes_moved=nbytes, sets=len(xs),
                                      reference=candidate.reference)
            for method in methods:
                [timing] = bench.measure([workload], copy[method], method, copies=copies, device=settings.device)
                result["rows"].append(dict(timing.to_dict(), shape=[tokens, width], mine=candidate.mine,
                                           timing=method))
        del xs
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


def _ratio(row: dict, reference: dict | None) -> float:
    if reference is None or row.get("error") or reference.get("error"):
        return math.nan
    return row["median_us"] / reference["median_us"]


def report(result: dict, title: str, reference_name: str) -> str:
    """One table per shape (each method side by side), then the best configuration per
    shape and method against the reference. Ratios: time / reference time (< 1 faster)."""
    lines = [f"{title} on {result['device']} ({result['op']}, bf16); copy (1 GiB) " + ", ".join(
        f"{m} {v:.0f} GB/s" for m, v in result["copy_gb_per_s"].items())]
    methods = result["methods"]
    by_shape: dict[tuple, list[dict]] = {}
    for row in result["rows"]:
        by_shape.setdefault(tuple(row["shape"]), []).append(row)
    best_lines = []
    for shape, rows in by_shape.items():
        names = list(dict.fromkeys(r["backend"] for r in rows))
        refs = {m: next((r for r in rows if r["reference"] and r["timing"] == m), None) for m in methods}
        head = f"{'%dx%d' % shape:<12} {'candidate':<34}"
        for m in methods:
            head += f" | {m:>6} us {'% copy':>7} {'% same':>7} {'x ref':>6}"
        lines += ["", head + f"   (x ref: time / {reference_name} time; % same: of a same-size copy)"]
        for name in names:
            text = f"{'':<12} {name:<34}"
            for m in methods:
                r = next((r for r in rows if r["backend"] == name and r["timing"] == m), None)
                if r is None or r.get("error"):
                    text += f" | {'error: ' + (r or {}).get('error', 'missing')[:33]:>33}"
                    continue
                mark = "*" if r["method"] != m else " "
                text += (f" | {r['median_us']:>8.1f}{mark} {r['pct_copy']:>7.1f} {r['pct_same_size_copy']:>7.1f}"
                         f" {_ratio(r, refs[m]):>6.3f}")
            lines.append(text)
        for m in methods:
            mine = [r for r in rows if r["mine"] and r["timing"] == m and not r.get("error")]
            if mine:
                best = min(mine, key=lambda r: r["median_us"])
                versus = f"  x{_ratio(best, refs[m]):.3f} {reference_name} time" if refs[m] else ""
                best_lines.append(f"{'%dx%d' % shape:<12} {m:<7} best {best['backend']:<34} {best['median_us']:>8.1f} us"
                                  f" {best['pct_copy']:>6.1f}% copy {best['pct_same_size_copy']:>6.1f}% same-size"
                                  + versus)
    lines += ["", f"best configuration per shape (x {reference_name} time: < 1 is faster;"
              " * in a table: graph capture failed, timed by events)", *best_lines]
    return "\n".join(lines)


def write_json(result: dict, path: str | None) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
