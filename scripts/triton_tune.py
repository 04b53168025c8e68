#!/usr/bin/env python3
"""Time launch configurations of the Triton kernels on the GPU (one device call).

For the issue's bench shapes (bf16, deepseek-v4 op), times the `triton` kernel over a few
(BLOCK_T, BLOCK_D, num_warps) and the `triton-fp8` kernel over (GROUPS_PER_PROG,
num_warps), with the same method as `swiglu-check bench` (CUDA events, rotated inputs,
host launches enqueued ahead), next to the device copy bandwidth measured in the same run.
Prints one table per kernel, % of copy bandwidth per config; `--json PATH` keeps it all.

Each shape also gets a size-matched device copy (the gated kernel's bytes, read plus
written, timed the same way): what a plain copy of that size reaches, per call, shows
how much of the gap at small shapes is the per-launch fixed cost rather than the kernel.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from swiglu_check import api
from swiglu_check.bench import copy_bandwidth, time_call
from swiglu_check.kernels.triton.gated import gated, launch_config
from swiglu_check.kernels.triton.gated_fp8 import gated_fp8
from swiglu_check.kernels.triton.gated_fp8 import launch_config as fp8_launch_config
from swiglu_check.kinds.gated import bench_inputs
from swiglu_check.quant import Fp8Spec

SHAPES = [(1024, 2048), (1024, 7168), (1024, 18432), (16384, 2048), (16384, 7168), (16384, 18432)]
GATED_CONFIGS = [(1, 512, 2), (1, 1024, 4), (1, 1024, 8), (1, 2048, 4), (1, 2048, 8), (1, 4096, 8),
                 (1, 4096, 16), (2, 1024, 8), (4, 512, 8)]
FP8_CONFIGS = [(2, 2), (4, 2), (4, 4), (8, 4), (8, 8), (16, 8), (16, 4)]


def _gbps(nbytes: int, call, sets: int) -> float:
    return nbytes / (statistics.median(time_call(call, sets)) * 1e-3) / 1e9


def _gbps_back_to_back(nbytes: int, call, sets: int, window: int = 50, windows: int = 20) -> float:
    """Like `_gbps`, but one event pair around each window of back-to-back calls (the
    steady state of a graph-captured model): per-launch gaps overlap, events do not split
    the stream. Median over windows of the per-call average."""
    for i in range(10):
        call(i % sets)
    times = []
    for w in range(windows):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(20_000_000)  # let the host enqueue the window ahead of the GPU
        start.record()
        for i in range(window):
            call((w * window + i) % sets)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / window)
    return nbytes / (statistics.median(times) * 1e-3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write every timing here")
    args = parser.parse_args()
    settings = api.build_settings(op="deepseek-v4", dtypes=["bf16"], device="cuda")
    op = settings.op
    copy = copy_bandwidth(settings.device) / 1e9
    print(f"device {torch.cuda.get_device_name()}, copy {copy:.0f} GB/s")
    results: dict = {"copy_gb_per_s": copy, "gated": {}, "fp8": {}}
    for tokens, width in SHAPES:
        xs = bench_inputs(tokens, width, "bf16", op, settings)
        nbytes = 3 * tokens * width * 2
        srcs = [x.view(-1)[: 3 * tokens * width // 2] for x in xs]  # half the bytes read, half written
        dst = torch.empty_like(srcs[0])
        row = {"size-matched copy": _gbps(nbytes, lambda i: dst.copy_(srcs[i]), len(srcs))}
        del srcs, dst
        for config in GATED_CONFIGS:
            if config[1] > 2 * width:
                continue
            row[str(config)] = _gbps(nbytes, lambda i, c=config: gated(xs[i], op, _config=c), len(xs))
        row["default " + str(launch_config(tokens, width, 2))] = _gbps(nbytes, lambda i: gated(xs[i], op), len(xs))
        row["default back-to-back"] = _gbps_back_to_back(nbytes, lambda i: gated(xs[i], op), len(xs))
        results["gated"][f"{tokens}x{width}"] = row
        spec = Fp8Spec()
        groups = width // spec.group_size
        nbytes = 4 * tokens * width + tokens * width + 4 * tokens * groups
        row = {}
        for config in FP8_CONFIGS:
            row[str(config)] = _gbps(nbytes, lambda i, c=config: gated_fp8(xs[i], op, spec, _config=c), len(xs))
        row["default " + str(fp8_launch_config(groups, spec.group_size))] = _gbps(
            nbytes, lambda i: gated_fp8(xs[i], op, spec), len(xs))
        row["default back-to-back"] = _gbps_back_to_back(nbytes, lambda i: gated_fp8(xs[i], op, spec), len(xs))
        results["fp8"][f"{tokens}x{width}"] = row
        del xs
        torch.cuda.empty_cache()
    for kernel in ("gated", "fp8"):
        print(f"\n{kernel}: % of copy bandwidth ({copy:.0f} GB/s) per config")
        for shape, row in results[kernel].items():
            cells = "  ".join(f"{name}={100 * v / copy:.1f}" for name, v in row.items())
            print(f"  {shape:>12}  {cells}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
