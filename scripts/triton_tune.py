#!/usr/bin/env python3
"""Time launch configurations of the Triton kernels against `torch-compile` (one GPU run).

At the issues' shapes (bf16, deepseek-v4, L = 10; T in {1024, 16384} x D in {2048, 7168,
18432}), times the `triton` kernel over (BLOCK_T, BLOCK_D, num_warps) and the `triton-fp8`
kernel over (GROUPS_PER_PROG, num_warps), with `swiglu-check bench`'s own method (per-call
events and CUDA-graph replay; the 1 GiB copy and a same-size copy per row, same method),
beside `torch-compile`. Prints a table per shape and the best configuration per shape:
issue 3 wants triton >= 90% of copy and faster than torch-compile (x ref < 1), triton-fp8
>= 80% of copy.

    python3 scripts/triton_tune.py [--json OUT.json] [--shape TxD ...] [--timing events,graph] [--no-fp8]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gated_tune_common import Candidate, parse_shapes, report, require_gpu, sweep, write_json  # noqa: E402

# (BLOCK_T, BLOCK_D, num_warps); tiles wider than the row are skipped (half masked)
GATED_CONFIGS = [(1, 512, 2), (1, 512, 4), (1, 1024, 4), (1, 1024, 8), (1, 2048, 4), (1, 2048, 8), (1, 4096, 16),
                 (2, 1024, 8), (4, 512, 8)]
FP8_CONFIGS = [(4, 2), (4, 4), (8, 4), (8, 8), (16, 4)]  # (GROUPS_PER_PROG, num_warps), group 128


def gated_candidates(tokens: int, width: int) -> list[Candidate]:
    from swiglu_check.backends import REGISTRY
    from swiglu_check.kernels.triton.gated import gated, launch_config
    from swiglu_check.ops import preset

    op = preset("deepseek-v4")
    found = [Candidate(f"triton default {launch_config(tokens, width, 2)}", lambda x: gated(x, op))]
    found += [Candidate(f"triton {config}", lambda x, c=config: gated(x, op, _config=c))
              for config in GATED_CONFIGS if config[1] <= width]
    compiled = REGISTRY.get("torch-compile")
    if compiled.available()[0]:
        found.append(Candidate("torch-compile", lambda x: compiled.call(x, op), reference=True, mine=False))
    return found


def fp8_candidates(tokens: int, width: int) -> list[Candidate]:
    from swiglu_check.kernels.triton.gated_fp8 import gated_fp8, launch_config
    from swiglu_check.ops import preset
    from swiglu_check.quant import Fp8Spec

    op, spec = preset("deepseek-v4"), Fp8Spec()
    default = launch_config(width // spec.group_size, spec.group_size)
    found = [Candidate(f"triton-fp8 default {default}", lambda x: gated_fp8(x, op, spec))]
    found += [Candidate(f"triton-fp8 {config}", lambda x, c=config: gated_fp8(x, op, spec, _config=c))
              for config in FP8_CONFIGS]
    return found


def fp8_bytes(tokens: int, width: int, size: int) -> int:
    """[T, 2D] read; D fp8 values and D/128 fp32 scales per row written."""
    return 2 * tokens * width * size + tokens * width + 4 * tokens * (width // 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write every timing here (a .fp8 suffix is added for the FP8 sweep)")
    parser.add_argument("--shape", action="append", help="TxD (repeatable); default: the issues' six shapes")
    parser.add_argument("--timing", default="events,graph", help="events, graph or both (default)")
    parser.add_argument("--no-fp8", action="store_true", help="leave out the triton-fp8 sweep")
    args = parser.parse_args(argv)
    methods = tuple(m for m in args.timing.split(",") if m)
    if not methods or set(methods) - {"events", "graph"}:
        parser.error(f"--timing: expected events, graph or events,graph, got {args.timing!r}")
    require_gpu("triton_tune")
    shapes = parse_shapes(args.shape)
    gated_result = sweep(gated_candidates, shapes, lambda t, d, size: 3 * t * d * size, methods)
    write_json(gated_result, args.json)
    print(report(gated_result, "triton launch configurations", "torch-compile"))
    if not args.no_fp8:
        fp8_result = sweep(fp8_candidates, shapes, fp8_bytes, methods)
        write_json(fp8_result, args.json and args.json.replace(".json", "") + ".fp8.json")
        print()
        print(report(fp8_result, "triton-fp8 launch configurations (group 128; target >= 80% of copy)", "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
