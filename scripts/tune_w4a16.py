"""Tune the W4A16 GEMM on a GPU and write its tile tables (kernels/w4a16/configs.py).

    python3 scripts/tune_w4a16.py --out $OUT/tune.json --table $OUT/table.json [--budget-s 200]

1. Compile every candidate config in parallel worker processes (Triton's disk cache
   then serves the timing process).
2. For each case (M in 1/16/64, (K, N) in the three decode shapes, NVFP4 and MXFP4,
   bf16) check every config against an fp32 torch product and time it with each split
   of K (1, 2, 4, 8): CUDA-graph replays of back-to-back calls over weight sets rotated
   past the L2 (device time; on the lent H100 an eager launch costs ~30 us of host time).
3. Per M bucket and format, pick the base config and split-K target with the best
   geometric-mean slowdown against the per-case best over that format's three cases, and
   write the tables (kernels/w4a16/tables.py `tables_json`): one list of rows when both
   formats picked the same, else `{"nvfp4": [rows], "mxfp4": [rows]}`; either is a valid
   SWIGLU_CHECK_W4A16_TABLE file. A bucket some format has no pick for is left out of
   every table; a format not in `--formats` keeps the table in effect; with no bucket
   left, no table is written and the script exits 1.
`--deqs` sets the dequantization recipes of the tensor-core candidates.
`--ab 2,4` tunes nothing: it times each format's table config for each M with each recipe (same
tiles, same split of K) beside cuBLAS, checks each output against the fp32 product, and
marks outputs that differ bit for bit from the first recipe's, one row per shape.
`--dry-run` runs the script through the interpreter on a tiny shape (tests the script).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from typing import Any, NamedTuple

import torch

from swiglu_check.references.fp4 import FORMATS

SHAPES = ((4096, 14336), (14336, 4096), (4096, 4096))  # (K, N)
MS = (16, 1, 64)
DEQS = (2, 3, 4)
SPLITS = (1, 2, 4, 8)
SPLIT_TARGETS = (0, 132, 264, 528, 1056)
DEVICE = "cuda"
DRY = False


def candidates(bm: int):
    from swiglu_check.kernels.w4a16.configs import GemmConfig

    if DRY:
        grid = [(16, 64, 4, 1, 0)] if bm == 1 else [(16, 64, 4, 1, 0), (32, 64, 4, 1, 0)]
    elif bm == 1:
        grid = itertools.product((16, 32, 64), (256, 512), (4, 8), (3, 4), (0,))
    elif bm == 16:
        grid = itertools.product((32, 64, 128, 256), (128, 256), (4, 8), (2, 3, 4), DEQS)
    else:
        grid = itertools.product((32, 64, 128), (64, 128, 256), (4, 8), (2, 3, 4), DEQS)
    return [GemmConfig(bn, bm, bk, 1, w, st, deq) for bn, bk, w, st, deq in grid]


def block_ms(m: int) -> tuple[int, ...]:
    return (1, 16) if m == 1 else (16,) if m <= 16 else (64,)


def _compile_one(fmt: str, cfg_dict: dict) -> tuple[str, str]:
    """Worker: compile (by running once) one config on a small problem."""
    from swiglu_check.kernels.w4a16.configs import GemmConfig
    from swiglu_check.kernels.w4a16.gemm import launch
    from swiglu_check.kinds.linear_w4a16 import random_fp4_weight

    cfg = GemmConfig(**cfg_dict)
    try:
        g = torch.Generator(device="cuda").manual_seed(0)
        w = random_fp4_weight(fmt, 256, 4096, "cuda", g)
        x = torch.randn(16, 4096, device="cuda").to(torch.bfloat16)
        y = torch.empty(16, 256, device="cuda", dtype=torch.bfloat16)
        launch(x, w, y, cfg)
        torch.cuda.synchronize()
        return cfg.label, ""
    except Exception as exc:  # out of shared memory, registers, ...
        return cfg.label, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def precompile(formats: list[str], workers: int) -> dict[tuple[str, str], str]:
    needed = sorted({bm for m in MS for bm in block_ms(m)})
    jobs = [(fmt, cfg) for fmt in formats for bm in needed for cfg in candidates(bm)]
    errors: dict[tuple[str, str], str] = {}
    start = time.time()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_compile_one, fmt, asdict(cfg)): fmt for fmt, cfg in jobs}
        for future in as_completed(futures):
            label, error = future.result()
            if error:
                errors[(futures[future], label)] = error
    print(f"precompiled {len(jobs)} kernels with {workers} workers in {time.time() - start:.0f} s;"
          f" {len(errors)} failed", flush=True)
    for (fmt, label), error in list(errors.items())[:5]:
        print(f"  {fmt} {label}: {error}")
    return errors


def device_us(fn, sets: int) -> float:
    """Median device time per call (CUDA-graph replays; host wall time in a dry run)."""
    if DRY:
        start = time.perf_counter()
        fn(0)
        return (time.perf_counter() - start) * 1e6
    from swiglu_check.bench import time_graph

    return statistics.median(time_graph(fn, sets, replays=5)) * 1e3


def eager_us(fn, sets: int, calls: int = 100) -> float:
    """Host wall time per eager call over a burst (what an un-graphed caller pays)."""
    if DRY:
        return device_us(fn, sets)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(calls):
        fn(i % sets)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def cublas_times(m: int, k: int, n: int, g: torch.Generator) -> tuple[float, float]:
    """(device, eager) microseconds of the bf16 `torch.matmul` (cuBLAS) of the shape."""
    from swiglu_check.bench import rotation_sets

    sets = rotation_sets(n * k * 2)
    xb = [torch.randn(m, k, device=DEVICE, generator=g).to(torch.bfloat16) for _ in range(sets)]
    wb = [torch.randn(n, k, device=DEVICE, generator=g).to(torch.bfloat16) for _ in range(sets)]
    return (device_us(lambda i: torch.matmul(xb[i], wb[i].t()), sets),
            eager_us(lambda i: torch.matmul(xb[i], wb[i].t()), sets))


def fp4_operands(fmt: str, m: int, k: int, n: int, g: torch.Generator):
    """Random FP4 weights and bf16 x, rotated past the L2, and the unrounded fp32 product
    of the first set."""
    from swiglu_check.bench import rotation_sets
    from swiglu_check.kinds.linear_w4a16 import fp4_bytes, random_fp4_weight
    from swiglu_check.references import fp4

    sets = rotation_sets(fp4_bytes(fmt, n, k))
    ws = [random_fp4_weight(fmt, n, k, DEVICE, g) for _ in range(sets)]
    xs = [torch.randn(m, k, device=DEVICE, generator=g).to(torch.bfloat16) for _ in range(sets)]
    ref = torch.matmul(xs[0].float(), fp4.dequantize(ws[0], torch.float32).T).double()
    return ws, xs, ref


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref).norm() / ref.norm())


MAX_ERR = 4e-3  # bf16 rounding of an fp32-exact product is ~1.5e-3


def ab_recipes(deqs: tuple[int, ...], formats: list[str]) -> int:
    """`--ab`: each format's table config for each M with each recipe, one row per shape,
    ending in the configs' tiles and split (one label, or `fmt:label,...` where they differ)."""
    from swiglu_check.kernels.w4a16.configs import pick_config
    from swiglu_check.kernels.w4a16.gemm import launch

    heads = "".join(f"{f'{fmt} d{deq}':>14}  " for fmt in formats for deq in deqs)
    print(f"{'M x K x N':<17} {'cuBLAS':>7}{heads}  (us, x = cuBLAS / time; '!=': not bit-equal to the first"
          " recipe; WRONG: error vs fp32 > 4e-3)")
    wrong = 0
    for m in MS:
        for k, n in SHAPES:
            g = torch.Generator(device=DEVICE).manual_seed(1)
            cublas = cublas_times(m, k, n, g)[0]
            row, labels = f"{f'{m}x{k}x{n}':<17} {cublas:7.1f}", {}
            for fmt in formats:
                ws, xs, ref = fp4_operands(fmt, m, k, n, g)
                y = torch.empty(m, n, device=DEVICE, dtype=torch.bfloat16)
                base = pick_config(m, n, k, interpreted=DRY, fmt=fmt)
                labels[fmt] = base.label[:base.label.rindex("d")]  # the tiles and split, not the recipe
                first = None
                for deq in deqs:
                    cfg = replace(base, deq=deq)
                    launch(xs[0], ws[0], y, cfg)
                    out = y.clone()
                    first = out if first is None else first
                    bad = rel_err(out, ref) > MAX_ERR
                    wrong += bad
                    us = device_us(lambda i: launch(xs[i], ws[i], y, cfg), len(ws))
                    mark = "WRONG" if bad else "!=" if not torch.equal(out, first) else ""
                    row += f" {us:7.1f} x{cublas / us:4.2f}{mark:<2}"
                del ws, xs
            distinct = set(labels.values())
            tiles = distinct.pop() if len(distinct) == 1 else ",".join(f"{f}:{v}" for f, v in labels.items())
            print(f"{row}  {tiles}", flush=True)
    return 1 if wrong else 0


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.inf


BUCKETS = ((1, 1), (16, 16), (64, 1 << 30))  # (M timed, largest M of its table bucket)


class Pick(NamedTuple):
    top: int  # largest M of the table bucket
    config: Any  # GemmConfig with split_k 0 and the picked split target
    slowdown: float  # geometric mean over `cases` of its time / the case's best
    cases: tuple  # the (fmt, m, k, n) keys it was scored on


def pick_bucket(bucket_m: int, keys: tuple[tuple, ...], cases: dict, times: dict, bases: dict) -> tuple[float, Any]:
    """The base config (`bases`: label -> config) and split target with the best geometric-mean
    slowdown against each case's best (`cases[key]["best_us"]`) over `keys` (`(fmt, m, k, n)`
    of M = `bucket_m`), as `(slowdown, config with split_k 0)`; `(inf, None)` when no pair was
    timed (`times[(*key, label, split)]`: us) on every case."""
    from swiglu_check.kernels.w4a16.configs import choose_split_k

    best_choice = (math.inf, None)
    for label, base in bases.items():
        if base.block_m not in block_ms(bucket_m):
            continue
        for target in SPLIT_TARGETS:
            slowdowns = []
            for fmt, m, k, n in keys:
                split = choose_split_k(replace(base, split_target=target), m, n, k)
                us = times.get((fmt, m, k, n, label, split))
                if us is None:
                    break
                slowdowns.append(us / cases[(fmt, m, k, n)]["best_us"])
            else:
                score = geomean(slowdowns)
                if slowdowns and score < best_choice[0]:
                    best_choice = (score, replace(base, split_k=0, split_target=target))
    return best_choice


def pick_tables(cases: dict, times: dict, bases: dict, formats: list[str]) -> dict[str, tuple[Pick, ...]]:
    """Per format, each M bucket's `pick_bucket` over that format's cases only; a bucket
    where some format has no pick is left out of every format's table."""
    picked: dict[str, list[Pick]] = {fmt: [] for fmt in formats}
    for bucket_m, top in BUCKETS:
        keys = {fmt: tuple(key for key in cases if key[:2] == (fmt, bucket_m) and cases[key]["best"])
                for fmt in formats}
        choices = {fmt: pick_bucket(bucket_m, keys[fmt], cases, times, bases) for fmt in formats}
        if all(cfg is not None for _, cfg in choices.values()):
            for fmt, (score, cfg) in choices.items():
                picked[fmt].append(Pick(top, cfg, score, keys[fmt]))
    return {fmt: tuple(rows) for fmt, rows in picked.items()}


def main() -> int:
    global DEVICE, DRY, SHAPES, MS, DEQS
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tune.json")
    parser.add_argument("--table", default="w4a16-table.json")
    parser.add_argument("--formats", default="nvfp4,mxfp4")
    parser.add_argument("--ms", default="16,1,64", help="token counts to time (the table gets their buckets only)")
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--deqs", default=",".join(map(str, DEQS)), help="recipes of the tensor-core candidates")
    parser.add_argument("--ab", metavar="DEQS", help="tune nothing: time the table's configs with these recipes")
    parser.add_argument("--dry-run", action="store_true", help="CPU interpreter, tiny shapes: tests the script")
    args = parser.parse_args()
    formats = args.formats.split(",")
    if not set(formats) <= set(FORMATS):
        parser.error(f"--formats {args.formats}: a comma-separated list of {', '.join(FORMATS)}")
    MS = tuple(int(v) for v in args.ms.split(",") if v)
    DEQS = tuple(int(v) for v in args.deqs.split(",") if v)
    if args.dry_run:
        DEVICE, DRY, SHAPES = "cpu", True, ((256, 64),)

    from swiglu_check.bench import copy_bandwidth
    from swiglu_check.kernels.w4a16.configs import GPU_TABLES, TABLE_ENV, GemmConfig, choose_split_k
    from swiglu_check.kernels.w4a16.tables import active_tables, tables_json
    from swiglu_check.kernels.w4a16.gemm import launch
    from swiglu_check.kinds.linear_w4a16 import fp4_bytes

    t0 = time.time()
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)"
    print("device:", name, "| torch", torch.__version__, "| triton", __import__("triton").__version__, flush=True)
    if args.ab:
        return ab_recipes(tuple(int(v) for v in args.ab.split(",")), formats)
    compile_errors = {} if DRY else precompile(formats, args.workers)
    copy_bps = 1e11 if DRY else copy_bandwidth(DEVICE)
    print(f"copy bandwidth {copy_bps / 1e9:.0f} GB/s (read + write)", flush=True)

    times: dict[tuple, float] = {}  # (fmt, m, k, n, base label, split) -> us
    bases: dict[str, GemmConfig] = {}
    cases = {}  # (fmt, m, k, n) -> dict(cublas, floor, best)
    wrong = []
    out_of_time = False
    for m in MS:
        for k, n in SHAPES:
            g = torch.Generator(device=DEVICE).manual_seed(1)
            cublas, cublas_eager = cublas_times(m, k, n, g)
            for fmt in formats:
                wbytes = fp4_bytes(fmt, n, k)
                ws, xs, ref = fp4_operands(fmt, m, k, n, g)
                sets = len(ws)
                y = torch.empty(m, n, device=DEVICE, dtype=torch.bfloat16)
                floor_us = (wbytes + 2 * (m * k + m * n)) / copy_bps * 1e6
                best = (math.inf, None)
                for bm in block_ms(m):
                    for base in candidates(bm):
                        if (fmt, base.label) in compile_errors:
                            continue
                        bases[base.label] = base
                        for split in SPLITS:
                            if k // split < base.block_k:
                                continue
                            cfg = replace(base, split_k=split)
                            try:
                                launch(xs[0], ws[0], y, cfg)
                                err = rel_err(y, ref)
                                us = device_us(lambda i: launch(xs[i], ws[i], y, cfg), sets)
                            except Exception as exc:
                                print(f"  {fmt} {cfg.label}: {type(exc).__name__}: {str(exc)[:100]}")
                                continue
                            if err > MAX_ERR:
                                wrong.append((fmt, m, k, n, cfg.label, err))
                                continue
                            times[(fmt, m, k, n, base.label, split)] = us
                            if us < best[0]:
                                best = (us, cfg)
                        if time.time() - t0 > args.budget_s:
                            out_of_time = True
                            break
                    if out_of_time:
                        break
                cases[(fmt, m, k, n)] = {"cublas_us": cublas, "cublas_eager_us": cublas_eager,
                                         "floor_us": floor_us, "best_us": best[0],
                                         "best": best[1].label if best[1] else None}
                if best[1] is not None:
                    eager = eager_us(lambda i: launch(xs[i], ws[i], y, best[1]), sets)
                    cases[(fmt, m, k, n)]["best_eager_us"] = eager
                    print(f"{fmt} M={m:<3d} K={k:<5d} N={n:<5d} best {best[1].label:<22s} {best[0]:6.1f} us"
                          f" (eager {eager:5.1f}) | cuBLAS {cublas:6.1f} us (eager {cublas_eager:5.1f})"
                          f" | x{cublas / best[0]:4.2f} | floor {floor_us:5.1f} us", flush=True)
                del ws, xs
                if out_of_time:
                    break
            if out_of_time:
                break
        if out_of_time:
            print(f"budget of {args.budget_s:.0f} s reached: the table covers what was timed", flush=True)
            break
    if wrong:
        print(f"{len(wrong)} (case, config) results WRONG, e.g. {wrong[:3]}")

    picked = pick_tables(cases, times, bases, formats)
    report = []
    for fmt, picks in picked.items():
        for top, cfg, score, keys in picks:
            print(f"bucket M<={top} {fmt}: {cfg} (geomean slowdown {score:.3f})")
            for key in keys:
                m, k, n = key[1:]
                split = choose_split_k(cfg, m, n, k)
                us = times[(*key, replace(cfg, split_k=1).label, split)]
                case = cases[key]
                report.append(f"{fmt:5s} {m:>3d}x{k}x{n:<5d} table {cfg.label}/t{cfg.split_target}->s{split}"
                              f" {us:6.1f} us (best {case['best_us']:6.1f}) | cuBLAS {case['cublas_us']:6.1f} us"
                              f" | x{case['cublas_us'] / us:4.2f} | floor {case['floor_us']:5.1f} us"
                              f" | eager: W4 {case.get('best_eager_us', math.nan):5.1f}"
                              f" cuBLAS {case['cublas_eager_us']:5.1f} us")
    table = None
    if any(picked.values()):
        in_effect = active_tables(TABLE_ENV, GPU_TABLES, GemmConfig)  # for the formats not tuned
        by_format = {fmt: tuple((p.top, p.config) for p in picked[fmt]) if fmt in picked else in_effect[fmt]
                     for fmt in GPU_TABLES}
        for fmt in (fmt for fmt in GPU_TABLES if fmt not in picked):
            print(f"{fmt} was not tuned (--formats): the table file keeps its table in effect")
        table = tables_json(by_format)
        with open(args.table, "w") as f:
            f.write(table)
    else:
        print(f"no M bucket has a pick for every format: {args.table} not written")

    with open(args.out, "w") as f:
        json.dump({"device": name, "copy_gbps": copy_bps / 1e9,
                   "cases": {"/".join(map(str, key)): value for key, value in cases.items()},
                   "times": {"/".join(map(str, key)): value for key, value in times.items()},
                   "compile_errors": {f"{a}/{b}": e for (a, b), e in compile_errors.items()},
                   "wrong": wrong}, f)
    print("\n==== tune summary (bf16, device time from CUDA-graph replays) ====")
    print(table or "(no table written)\n", end="")
    for line in report:
        print(line)
    print(f"tuning took {time.time() - t0:.0f} s")
    return 0 if table else 1


if __name__ == "__main__":
    sys.exit(main())
