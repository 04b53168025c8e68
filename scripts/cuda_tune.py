#!/usr/bin/env python3
"""Time launch configurations of the CUDA C++ gated kernel against `triton` (one GPU run).

At the issues' shapes (bf16, deepseek-v4, L = 10; T in {1024, 16384} x D in {2048, 7168,
18432}), every candidate below is timed with `swiglu-check bench`'s own method, by per-call
events and by CUDA-graph replay, beside the `triton` and `torch-compile` backends and a
same-size copy. Ratios are time / triton time: issue 4 wants <= 1.05 and >= 90% of copy.

    python3 scripts/cuda_tune.py [--json OUT.json] [--shape TxD ...] [--timing events,graph]

Candidates (`act_and_mul_variant` arguments; "item" = one 16-byte vector of 8 bf16):

- default: `plan_grid` (T = 1024: blocks of 256 items, one per thread; T = 16384: a block per
  row), and the default silu math (bf16: __expf and __fdividef, the math triton compiles to)
- blk128: 128-item blocks, one per thread (the `triton` tile: 4 warps x 8 columns)
- blk512 / row: 512-item blocks / a block per row (up to 512 threads, one item each)
- row/t128, blk512/t128: the same chunks over 128 threads (2 to 5 items per thread)
- persistent: as many blocks as are resident, looping over rows
- precise, precise/blk128, precise/row: silu with expf and an IEEE division (the fp32 default)
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gated_tune_common import Candidate, parse_shapes, report, require_gpu, sweep, write_json  # noqa: E402

ROW = 1 << 30  # items_per_block for one block per row
CONFIGS = {
    "default": {},
    "blk128": dict(items_per_block=128),
    "blk512": dict(items_per_block=512),
    "row": dict(items_per_block=ROW),
    "row/t128": dict(items_per_block=ROW, max_threads=128),
    "blk512/t128": dict(items_per_block=512, max_threads=128),
    "persistent": dict(max_blocks=-1),
    "precise": dict(math="precise"),
    "precise/blk128": dict(math="precise", items_per_block=128),
    "precise/row": dict(math="precise", items_per_block=ROW),
}


def candidates(tokens: int, width: int) -> list[Candidate]:
    from swiglu_check.backends import REGISTRY
    from swiglu_check.kernels import cuda as cuda_kernels
    from swiglu_check.ops import preset

    op = preset("deepseek-v4")
    found = [Candidate(f"cuda {name}", lambda x, kw=kw: cuda_kernels.act_and_mul_variant(x, op, **kw))
             for name, kw in CONFIGS.items()]
    found[0] = Candidate("cuda default", lambda x: cuda_kernels.act_and_mul(x, op))  # the backend's own path
    for name in ("triton", "torch-compile"):
        backend = REGISTRY.get(name)
        ok, why = backend.available()
        if ok:
            found.append(Candidate(name, lambda x, b=backend: b.call(x, op), reference=name == "triton", mine=False))
        else:
            print(f"cuda_tune: {name} unavailable ({why}); its rows are left out", file=sys.stderr)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write every timing here")
    parser.add_argument("--shape", action="append", help="TxD (repeatable); default: the issues' six shapes")
    parser.add_argument("--timing", default="events,graph", help="events, graph or both (default)")
    args = parser.parse_args(argv)
    methods = tuple(m for m in args.timing.split(",") if m)
    if not methods or set(methods) - {"events", "graph"}:
        parser.error(f"--timing: expected events, graph or events,graph, got {args.timing!r}")
    require_gpu("cuda_tune")
    from swiglu_check.kernels import cuda as cuda_kernels

    ok, why = cuda_kernels.availability()
    if not ok:
        print(f"cuda_tune: the cuda backend is unavailable: {why}", file=sys.stderr)
        return 2
    cuda_kernels.ensure_loaded()
    result = sweep(candidates, parse_shapes(args.shape), lambda t, d, size: 3 * t * d * size, methods)
    write_json(result, args.json)
    print(report(result, "cuda launch configurations", "triton"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
