"""Tune the W4A16 MoE layer on a GPU and write its config table (kernels/w4a16/moe.py).

    python3 scripts/tune_moe_w4a16.py --out $OUT/moe-tune.json --table $OUT/moe-table.json

For T in 1/16/64 tokens (H 4096, I 2048, top-6 of 16 experts, L 10, bf16) and both
formats: every candidate config is compiled in parallel worker processes, checked
against the fp32 torch layer on the same random weights, and timed as CUDA-graph
replays against the same layer with bf16 weights through torch (cuBLAS). Per token
bucket and format the fastest config wins; the fused and unfused activation are both
timed for it. `--table` gets one list of rows when both formats picked the same configs,
else `{"nvfp4": [rows], "mxfp4": [rows]}` (kernels/w4a16/tables.py `tables_json`); either
is a valid SWIGLU_CHECK_MOE_W4A16_TABLE file.

Exits 2 with one line when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict

import torch

TOKENS = (1, 16, 64)
FORMATS = ("nvfp4", "mxfp4")
H, I, E, K = 4096, 2048, 16, 6


def candidates(tokens: int):
    from swiglu_check.kernels.w4a16.moe import MoeConfig

    if tokens <= 16:  # few rows per expert: narrower programs (more of them) and deeper pipelines
        sizes = ((16, 32), (32, 32), (16, 64), (32, 64), (64, 64), (64, 128))
        return [MoeConfig(n1, n2, 16, 128, 4, stages, deq)
                for (n1, n2), stages, deq in itertools.product(sizes, (3, 5), (3, 2, 4))]
    sizes = ((32, 32), (64, 64), (128, 128), (64, 128), (128, 64))
    return [MoeConfig(n1, n2, bm, bk, w, 3, deq)
            for (n1, n2), bm, bk, w, deq in itertools.product(sizes, (16, 32), (128,), (4, 8), (3, 2, 4))]


def pick_tables(timed: dict[int, dict[str, dict]]) -> dict[str, tuple]:
    """Per format, the fastest config of each token bucket (`timed[tokens][fmt][config]`:
    us), the last bucket open-ended; a bucket where some format timed nothing is left out."""
    by_format: dict[str, list] = {fmt: [] for fmt in FORMATS}
    for tokens in TOKENS:
        per_fmt = timed.get(tokens, {})
        if not all(per_fmt.get(fmt) for fmt in FORMATS):
            continue
        for fmt in FORMATS:
            best = min(per_fmt[fmt], key=per_fmt[fmt].get)
            by_format[fmt].append((tokens if tokens < TOKENS[-1] else 1 << 30, best))
    return {fmt: tuple(rows) for fmt, rows in by_format.items()}


def _layer(fmt: str, tokens: int, seed: int = 0):
    from swiglu_check.kinds.moe_bench import random_expert_weight
    from swiglu_check.references import moe

    g = torch.Generator(device="cuda").manual_seed(seed)
    w13 = random_expert_weight(fmt, E, 2 * I, H, "cuda", g)
    w2 = random_expert_weight(fmt, E, H, I, "cuda", g)
    x = (torch.randn((tokens, H), device="cuda", generator=g) * 0.5).to(torch.bfloat16)
    routing = moe.route(torch.randn((tokens, E), device="cuda", generator=g), K)
    return x, w13, w2, routing


def _compile_one(fmt: str, cfg: dict) -> str:
    from swiglu_check.kernels.w4a16.moe import MoeConfig, moe_w4a16
    from swiglu_check.ops import OpSpec

    try:
        x, w13, w2, routing = _layer(fmt, 4)
        moe_w4a16(x, w13, w2, routing.weights, routing.ids, OpSpec(), limit=10.0, config=MoeConfig(**cfg))
        torch.cuda.synchronize()
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="moe-tune.json")
    parser.add_argument("--table", default="moe-table.json")
    parser.add_argument("--budget-s", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("tune_moe_w4a16: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2

    from swiglu_check.bench import time_graph
    from swiglu_check.kernels.w4a16.backends import torch_moe
    from swiglu_check.kernels.w4a16.moe import TABLE_KEY, MoeConfig, moe_w4a16
    from swiglu_check.kernels.w4a16.tables import tables_json
    from swiglu_check.kinds.moe_bench import torch_layer, torch_layer_plan
    from swiglu_check.ops import PRESETS

    t0 = time.time()
    op = PRESETS["deepseek-v4"]
    configs = {c for t in TOKENS for c in candidates(t)}
    errors: dict[tuple[str, MoeConfig], str] = {}
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_compile_one, fmt, asdict(c)): (fmt, c) for fmt in FORMATS for c in configs}
        for future in as_completed(futures):
            if future.result():
                errors[futures[future]] = future.result()
    print(f"precompiled {len(futures)} configs in {time.time() - t0:.0f} s; {len(errors)} failed", flush=True)

    def us(fn) -> float:
        return statistics.median(time_graph(lambda _i: fn(), 1, replays=7)) * 1e3

    results, all_timed, lines = {}, {}, []
    for tokens in TOKENS:
        g = torch.Generator(device="cuda").manual_seed(1)
        dense13 = (torch.randn((E, 2 * I, H), device="cuda", generator=g) / H**0.5).to(torch.bfloat16)
        dense2 = (torch.randn((E, H, I), device="cuda", generator=g) / I**0.5).to(torch.bfloat16)
        per_fmt = {}
        for fmt in FORMATS:
            x, w13, w2, routing = _layer(fmt, tokens)
            plan = torch_layer_plan(routing)
            torch_us = us(lambda: torch_layer(x, dense13, dense2, plan, op))
            ref = torch_moe(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=10.0).double()
            timed = {}
            for cfg in candidates(tokens):
                if (fmt, cfg) in errors or time.time() - t0 > args.budget_s:
                    continue
                call = lambda cfg=cfg: moe_w4a16(x, w13, w2, routing.weights, routing.ids,  # noqa: E731
                                                 op.with_limit(None), limit=10.0, config=cfg)
                err = float((call().double() - ref).norm() / ref.norm())
                if err > 8e-3:
                    print(f"  WRONG {fmt} T={tokens} {cfg}: rel-L2 {err:.2e}")
                    continue
                timed[cfg] = us(call)
            per_fmt[fmt] = (torch_us, timed, (x, w13, w2, routing))
            results[f"{fmt}/{tokens}"] = {"torch_us": torch_us, "configs": [[asdict(c), t] for c, t in timed.items()]}
        all_timed[tokens] = {fmt: timed for fmt, (_, timed, _) in per_fmt.items()}
        if not all(all_timed[tokens].values()):
            continue  # pick_tables leaves this bucket out
        for fmt, (torch_us, timed, (x, w13, w2, routing)) in per_fmt.items():
            best = min(timed, key=timed.get)  # this format's pick (pick_tables)
            unfused = us(lambda: moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None),
                                           limit=10.0, config=best, fused=False))
            lines.append(f"{fmt} T={tokens:<3d} {len(torch.unique(routing.ids))}/{E} experts | torch bf16"
                         f" {torch_us:7.1f} us | W4A16 fused {timed[best]:7.1f} us (x{torch_us / timed[best]:4.2f})"
                         f" unfused {unfused:7.1f} us | {best}")
            print(lines[-1], flush=True)
        del dense13, dense2
        torch.cuda.empty_cache()
    table = tables_json(pick_tables(all_timed), TABLE_KEY)
    with open(args.table, "w") as f:
        f.write(table)
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "results": results,
                   "errors": {f"{a}/{b}": e for (a, b), e in errors.items()}}, f)
    print("\n==== MoE tune summary (bf16, L 10, H 4096, I 2048, top-6 of 16; CUDA-graph device time) ====")
    print(table, end="")
    for line in lines:
        print(line)
    print(f"tuning took {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
