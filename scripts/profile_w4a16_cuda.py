#!/usr/bin/env python3
"""Run the CUDA W4A16 GEMM on one shape and config a few times, for a profiler (ncu).

    ncu --clock-control none -k regex:gemm_kernel --launch-skip 2 --launch-count 1 \\
        python3 scripts/profile_w4a16_cuda.py 1x4096x14336 --config r1k4c4p4

`--config rRkWcC[sS]pP[t][x][mT][w][v]` (a config's label, as the tuner prints it;
CudaGemmConfig.from_label): rows per
warp R, warps along K W (kW may be left out: 1; k0: auto), CTAs per SM C (split-K aim), split
of K S (0 or left out: from the aim), ring stages P; `t` the tiled layout, `x` x in the CTA's
ring, `mT` at most T 8-token tiles per CTA (default 2), `w` the producer-warp kernel, `v` its x
by the bulk tensor copy engine. `--plant no-math` profiles the diagnostic variant.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", help="MxKxN")
    parser.add_argument("--config", default="r1k1c4p4")
    parser.add_argument("--format", default="nvfp4", choices=("nvfp4", "mxfp4"))
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--plant", default=None, help="a planted variant of the kernel (cuda_gemm.PLANTS)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("profile_w4a16_cuda: needs a CUDA GPU", file=sys.stderr)
        return 2
    from swiglu_check.kernels.w4a16 import cuda_gemm
    from swiglu_check.kinds.linear_w4a16 import random_fp4_weight

    m, k, n = (int(v) for v in args.shape.split("x"))
    try:
        cfg = cuda_gemm.CudaGemmConfig.from_label(args.config)
    except ValueError as exc:
        parser.error(f"--config: {exc}")
    g = torch.Generator(device="cuda").manual_seed(0)
    weight = random_fp4_weight(args.format, n, k, "cuda", g)
    x = torch.randn((m, k), device="cuda", generator=g).to(torch.bfloat16)
    for _ in range(args.calls):
        cuda_gemm.cuda_w4a16_matmul(x, weight, config=cfg, plant=args.plant)
    torch.cuda.synchronize()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    cfg = cuda_gemm.resolve_config(cfg, m, n, k, sms)
    print(f"{args.shape} {args.format} {cfg.label}: split_k {cuda_gemm.choose_split_k(m, n, k, cfg, sms)},"
          f" {cuda_gemm.output_tiles(m, n, cfg.rows_per_cta, cfg.token_tiles)} output tiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
