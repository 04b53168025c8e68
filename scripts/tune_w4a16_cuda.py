#!/usr/bin/env python3
"""Time the CUDA C++ W4A16 GEMM's launch configurations on the GPU, beside cuBLAS (bf16
`torch.matmul`) and the Triton GEMM, at the issue's shapes; print the best per shape.

    python3 scripts/tune_w4a16_cuda.py [--json out.json] [--dtype bf16]
    python3 scripts/tune_w4a16_cuda.py --shapes 1x4096x14336 --k-warps 1,4 --variants no-math

The config space (defaults: what won or came close on the H100 in sessions 5-14, 88
configs; 8 stages exist for the producer kernel only) is the product of --rows,
--k-warps, --ctas, --stages, --tiled (0: the weight's own rows layout, 1: the tiled layout
made once per weight, outside the timing, as an engine does at load), --x-ring (1: x
streams through a ring shared by the CTA's warps), --token-tiles (the most 8-token tiles
per CTA; 4 and 8 with the x ring and one warp along K, or the producer kernel) and
--producer (1: the producer-warp kernel, for the configs it exists for: tiled, no x ring,
rows 1, one or two warps along K per tile, 4 stages at 8 token tiles) and --x-tensor (1: the
producer kernel's x by the bulk tensor copy engine). --variants also times the kernel's diagnostic
variants (cuda_gemm.PLANTS: `no-math` streams the weights without decoding or
multiplying; `no-x-loads`, `no-mma`, `no-decode` each leave one part of the math out, M = 9
to 16 with the x ring only) at rows 1 and 4 stages for each --k-warps, --ctas, --tiled and
--x-ring value; they are reported beside the configs but never picked for the table (a
variant that does not exist for a config or shape is reported as nan).

Every row is device time by CUDA-graph replay (swiglu_check.bench.time_graph) with the
weights rotated over more than the L2 (swiglu_check.bench.rotation_sets), as in `bench`.
Exits 2 with one line when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every timing here")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--shapes", default="", help="MxKxN,... (default: the bench shapes)")
    parser.add_argument("--table", help="write the best config per M bucket here (JSON, for SWIGLU_CHECK_W4A16_CUDA_TABLE)")
    parser.add_argument("--rows", default="1,2", help="rows_per_warp values (16-row tiles per warp)")
    parser.add_argument("--k-warps", default="1,2,4,8", help="k_warps values (warps of a CTA along K)")
    parser.add_argument("--ctas", default="1,2,4,8", help="ctas_per_sm values (the split-K aim)")
    parser.add_argument("--stages", default="4,8", help="ring stages (8: the producer kernel only)")
    parser.add_argument("--tiled", default="1", help="weight layouts: 0 rows, 1 tiled")
    parser.add_argument("--x-ring", default="0,1", help="x path: 0 staged per CTA up front, 1 a CTA-wide ring")
    parser.add_argument("--producer", default="0,1",
                        help="1: the producer-warp kernel (tiled, no x ring, rows 1, one or two warps along K; stages 4 or 8)")
    parser.add_argument("--x-tensor", default="0",
                        help="1: the producer kernel's x by the bulk tensor copy engine (producer configs only)")
    parser.add_argument("--token-tiles", default="2,8",
                        help="most 8-token tiles per CTA (above 2: x ring and k_warps 1, or the producer kernel)")
    parser.add_argument("--variants", default="", help="diagnostic kernel variants to time too (cuda_gemm.PLANTS)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("tune_w4a16_cuda: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    from swiglu_check import bench
    from swiglu_check.kernels.w4a16 import cuda_gemm
    from swiglu_check.kernels.w4a16.gemm import w4a16_matmul
    from swiglu_check.kinds.linear_w4a16 import BENCH_SHAPES, fp4_bytes, random_fp4_weight

    start = time.perf_counter()
    cuda_gemm.EXTENSION.ensure_loaded()
    print(f"device {torch.cuda.get_device_name()}; extension ready in {time.perf_counter() - start:.1f} s", flush=True)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s] or list(BENCH_SHAPES)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v]

    configs, skipped = [], 0
    for r, kw, c, st, t, xr, tt, pr, xt in itertools.product(ints(args.rows), ints(args.k_warps), ints(args.ctas),
                                                             ints(args.stages), ints(args.tiled), ints(args.x_ring),
                                                             ints(args.token_tiles), ints(args.producer),
                                                             ints(args.x_tensor)):
        try:
            configs.append(cuda_gemm.CudaGemmConfig(rows_per_warp=r, k_warps=kw, ctas_per_sm=c, stages=st,
                                                    tiled=bool(t), x_ring=bool(xr), token_tiles=tt,
                                                    producer=bool(pr), x_tensor=bool(xt)))
        except ValueError:  # a combination no kernel is built for (CudaGemmConfig says which)
            skipped += 1
    if not configs:
        parser.error("no kernel is built for any of these combinations (see CudaGemmConfig)")
    print(f"{len(configs)} configs ({skipped} combinations without a kernel skipped)", flush=True)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in cuda_gemm.DIAGNOSTICS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; the diagnostics are {list(cuda_gemm.DIAGNOSTICS)}")
    diagnostics = [(v, cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=kw, ctas_per_sm=c, stages=4, tiled=bool(t),
                                                x_ring=bool(xr)))
                   for v, kw, c, t, xr in itertools.product(variants, ints(args.k_warps), ints(args.ctas), ints(args.tiled),
                                                            ints(args.x_ring))]
    rows = []
    print(f'{"shape":<16} {"format":<6} {"cuBLAS":>7} {"triton":>7} {"best cuda":>9} {"config":<9} {"x cuBLAS":>8}'
          f' {"x triton":>8}  all cuda configs (us)', flush=True)
    for (m, k, n), fmt in itertools.product(shapes, ("nvfp4", "mxfp4")):
        g = torch.Generator(device="cuda").manual_seed(0)
        sets = bench.rotation_sets(fp4_bytes(fmt, n, k))
        data = [(torch.randn((m, k), device="cuda", generator=g).to(dtype), random_fp4_weight(fmt, n, k, "cuda", g))
                for _ in range(sets)]
        dense_sets = bench.rotation_sets(n * k * 2)
        dense = [(torch.randn((m, k), device="cuda", generator=g).to(dtype),
                  torch.randn((n, k), device="cuda", generator=g).to(dtype)) for _ in range(dense_sets)]

        def timed(call, count):
            return statistics.median(bench.time_graph(call, count)) * 1e3

        cublas = timed(lambda i: torch.matmul(dense[i][0], dense[i][1].t()), dense_sets)
        del dense
        triton_us = timed(lambda i: w4a16_matmul(*data[i]), sets)
        per_config = {}
        for cfg in configs:
            # at this M a wider token-tile limit may launch the very kernel of the default
            # one (M <= 16): time it once, under both labels
            try:
                twin = dataclasses.replace(cfg, token_tiles=2)
            except ValueError:  # a config whose kernels exist for other token tiles only: no twin
                twin = cfg
            if (cfg.token_tiles not in (2, cuda_gemm.AUTO_TOKEN_TILES) and twin.label in per_config
                    and cuda_gemm.token_tiles(m, cfg.token_tiles) == cuda_gemm.token_tiles(m)):
                per_config[cfg.label] = per_config[twin.label]
                continue
            try:
                per_config[cfg.label] = timed(lambda i, cfg=cfg: cuda_gemm.cuda_w4a16_matmul(*data[i], config=cfg), sets)
            except Exception as exc:  # noqa: BLE001 - a config that fails is reported, not fatal
                per_config[cfg.label] = float("nan")
                print(f"  {cfg.label}: {type(exc).__name__}: {exc}", flush=True)
        best = min((v, key) for key, v in per_config.items() if v == v)
        per_variant = {}
        for variant, cfg in diagnostics:
            try:
                per_variant[f"{variant}@{cfg.label}"] = timed(
                    lambda i, cfg=cfg, variant=variant: cuda_gemm.cuda_w4a16_matmul(*data[i], config=cfg, plant=variant),
                    sets)
            except ValueError as exc:  # a diagnostic this config or M has no kernel for
                per_variant[f"{variant}@{cfg.label}"] = float("nan")
                print(f"  {variant}@{cfg.label}: {exc}", flush=True)
        rows.append({"shape": [m, k, n], "format": fmt, "cublas_us": cublas, "triton_us": triton_us,
                     "cuda_us": per_config, "variants_us": per_variant, "best": best[1]})
        all_text = " ".join(f"{key}:{v:.1f}" for key, v in {**per_config, **per_variant}.items())
        print(f"{m}x{k}x{n:<10} {fmt:<6} {cublas:7.1f} {triton_us:7.1f} {best[0]:9.1f} {best[1]:<9}"
              f" {cublas / best[0]:7.2f}x {triton_us / best[0]:7.2f}x  {all_text}", flush=True)
        del data
        torch.cuda.empty_cache()
    if args.table:
        write_table(rows, configs, args.table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "dtype": args.dtype, "rows": rows}, f, indent=1)
    return 0


def write_table(rows: list[dict], configs: list, path: str) -> None:
    """Per M bucket (the M values timed), the config with the smallest geometric mean time
    over that M's shapes and formats."""
    import math

    from swiglu_check.kernels.w4a16.tables import table_json

    by_label = {cfg.label: cfg for cfg in configs}
    table = []
    for m in sorted({row["shape"][0] for row in rows}):
        mine = [row for row in rows if row["shape"][0] == m]
        def score(label: str) -> float:
            times = [row["cuda_us"][label] for row in mine]
            return math.exp(sum(math.log(t) for t in times) / len(times)) if all(t == t for t in times) else math.inf
        best = min(by_label, key=score)
        print(f"M <= {m}: {best} (geometric mean {score(best):.1f} us)")
        table.append((m, by_label[best]))
    table[-1] = (1 << 30, table[-1][1])
    with open(path, "w") as f:
        f.write(table_json(tuple(table)))


if __name__ == "__main__":
    sys.exit(main())
