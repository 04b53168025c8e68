"""GPU-side helpers of scripts/gpu.d/30-cuda.sh (the CUDA C++ backend's part).

    python3 scripts/cuda_gpu.py build                 # build or load the extension, timed
    python3 scripts/cuda_gpu.py matrix OUT.json       # every preset x layout x input view
    python3 scripts/cuda_gpu.py targets BENCH.json    # the issue's speed targets, checked
    python3 scripts/cuda_gpu.py grid OUT.json         # grid choices; CUDA-graph, per-call and host times
    python3 scripts/cuda_gpu.py errors                # every bad-argument call, one line each

Each prints a short table; `matrix` and `targets` exit 1 when something misses.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

TARGET_SHAPES = [(t, d) for t in (1024, 16384) for d in (2048, 7168, 18432)]
MIN_PCT_COPY = 90.0
MAX_SLOWER_THAN_TRITON = 1.05
MATRIX_LIMITS = ["7", "10", "none"]
MATRIX_DTYPES = ["bf16", "fp16", "fp32"]
# aligned (16-byte path), odd width D = 13831 (scalar path), a larger aligned one
CONTIGUOUS_SHAPES = ["1024x4096", "257x13831", "1024x7168"]
SLICE_SHAPES = ["257x13831", "1024x4096"]  # column-slice: misaligned by one element, strided rows


def _shape(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def build() -> int:
    from swiglu_check.kernels.cuda import build as cuda_build

    start = time.perf_counter()
    path = cuda_build.ensure_loaded()
    print(f"loaded {path} after {time.perf_counter() - start:.1f} s")
    return 0


def matrix(out_path: str) -> int:
    from swiglu_check import api
    from swiglu_check.ops import LAYOUTS, PRESETS

    rows, everything = [], []
    for name in PRESETS:
        for layout in LAYOUTS:
            for view, shapes in (("contiguous", CONTIGUOUS_SHAPES), ("column-slice", SLICE_SHAPES)):
                report = api.check("cuda", op=name, layout=layout, limits=MATRIX_LIMITS, dtypes=MATRIX_DTYPES,
                                   shapes=shapes, device="cuda", input_view=view)
                verdicts = Counter(r.verdict for r in report.results)
                worst = {}
                for r in report.results:
                    ratio = r.metrics.get("floor_ratio")
                    if ratio is not None:
                        worst[r.params["dtype"]] = max(worst.get(r.params["dtype"], 0.0), ratio)
                rows.append((name, layout, view, dict(verdicts), worst))
                everything += [r.to_dict() for r in report.results]
                for r in report.results:
                    if r.verdict != "PASS":
                        print(f"  {r.verdict} {r.case_id}: {'; '.join(r.reasons)}")
    with open(out_path, "w") as handle:
        json.dump(everything, handle, indent=1, default=str)
    total = Counter()
    print(f"cuda run matrix: limits {','.join(MATRIX_LIMITS)} x dtypes {','.join(MATRIX_DTYPES)}"
          f" x shapes {' '.join(CONTIGUOUS_SHAPES)} (contiguous) / {' '.join(SLICE_SHAPES)} (column-slice)")
    print(f"{'op':<12} {'layout':<12} {'view':<13} {'verdicts':<22} worst floor ratio (bf16 fp16 fp32)")
    for name, layout, view, verdicts, worst in rows:
        total.update(verdicts)
        text = " ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
        ratios = " ".join(f"{worst.get(d, float('nan')):.3f}" for d in MATRIX_DTYPES)
        print(f"{name:<12} {layout:<12} {view:<13} {text:<22} {ratios}")
    print("total:", " ".join(f"{k} {v}" for k, v in sorted(total.items())))
    return 0 if set(total) == {"PASS"} else 1


def targets(bench_path: str) -> int:
    data = json.load(open(bench_path))
    copy = data["copy_gb_per_s"]
    by = {(t["backend"], tuple(t["params"]["shape"])): t for t in data["timings"] if not t.get("error")}
    print(f"speed targets (bf16, copy {copy:.0f} GB/s): cuda >= {MIN_PCT_COPY:.0f}% of copy and"
          f" <= {MAX_SLOWER_THAN_TRITON:.2f}x the triton time")
    print(f"{'shape':<12} {'cuda us':>9} {'cuda GB/s':>10} {'% copy':>7} {'triton us':>10} {'cuda/triton':>12}  verdict")
    missed = 0
    for shape in TARGET_SHAPES:
        mine, triton = by.get(("cuda", shape)), by.get(("triton", shape))
        if mine is None:
            print(f"{_shape(shape):<12} no cuda timing  MISS")
            missed += 1
            continue
        ok = mine["pct_copy"] >= MIN_PCT_COPY
        versus = "-"
        if triton is not None:
            relative = mine["median_us"] / triton["median_us"]
            versus = f"{relative:.3f}"
            ok = ok and relative <= MAX_SLOWER_THAN_TRITON
        missed += not ok
        print(f"{_shape(shape):<12} {mine['median_us']:>9.1f} {mine['gb_per_s']:>10.0f} {mine['pct_copy']:>7.1f}"
              f" {triton['median_us'] if triton else float('nan'):>10.1f} {versus:>12}  {'ok' if ok else 'MISS'}")
    if not any(backend == "triton" for backend, _ in by):
        print("(no triton timings in this run: only the copy-bandwidth target was checked)")
    return 1 if missed else 0


def graph_us(call, sets: int, reps: int = 20) -> float:
    """Median GPU time of one call in microseconds, from CUDA-graph replays (no host
    launch cost in it, unlike the per-call events of `bench`): `bench.time_graph`."""
    import statistics

    from swiglu_check.bench import time_graph

    return statistics.median(time_graph(call, sets, replays=reps)) * 1e3


def host_us(call, sets: int, calls: int = 300) -> float:
    """Host time per call when the host cannot wait on the GPU (launch cost)."""
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(calls):
        call(i % sets)
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def copy_graph_us(bytes_moved: int, sets: int) -> float:
    """A device copy moving the same bytes (read + write), timed like the kernel."""
    import torch

    elements = bytes_moved // 2 // 2  # bf16: half the bytes are read, half written
    sources = [torch.empty(elements, dtype=torch.bfloat16, device="cuda").normal_() for _ in range(sets)]
    targets = [torch.empty_like(src) for src in sources]
    return graph_us(lambda i: targets[i].copy_(sources[i]), sets)


def grid(out_path: str) -> int:
    """Grid choices of the same kernel, each timed three ways: per-call CUDA events (as
    `bench` does), replays of a CUDA graph (the kernel alone), and the host's time per
    call; beside a copy of the same size timed by graph too."""
    from swiglu_check import api, bench
    from swiglu_check.backends import REGISTRY, Backend
    from swiglu_check.kernels import cuda as cuda_kernels
    from swiglu_check.kinds.gated import gated_bench_workloads

    def variant(name: str, **grid_args: int) -> Backend:
        return Backend(name=name, kind="gated", devices=("cuda",),
                       call=lambda x, op: cuda_kernels.act_and_mul_variant(x, op, **grid_args))

    settings = api.build_settings(op="deepseek-v4", dtypes=["bf16"], device="cuda")
    copy = bench.copy_bandwidth(settings.device)
    backends = [REGISTRY.get("cuda"), variant("block-per-row", items_per_block=1 << 30),
                variant("256-per-block", items_per_block=256)]
    workloads = []
    for backend in backends:
        workloads += gated_bench_workloads(backend, settings, TARGET_SHAPES)
    timings = bench.measure(workloads, copy)
    copies = {}
    rows = []
    for workload, timing in zip(workloads, timings):
        shape = tuple(timing.params["shape"])
        if shape not in copies:
            copies[shape] = copy_graph_us(workload.bytes_moved, workload.sets)
        graph = graph_us(workload.call, workload.sets)
        rows.append(dict(timing.to_dict(), graph_us=graph, copy_graph_us=copies[shape],
                         graph_pct_copy=100.0 * workload.bytes_moved / (graph * 1e-6) / copy,
                         host_us=host_us(workload.call, workload.sets)))
    print(f"cuda kernel timing (bf16 deepseek-v4 L10; copy {copy / 1e9:.0f} GB/s on 1 GiB): per-call events"
          " as bench does | CUDA-graph replay (kernel alone) | same-size copy by graph | host us per call")
    print(f"{'shape':<12} {'variant':<14} {'event us':>9} {'% copy':>7} {'graph us':>9} {'% copy':>7}"
          f" {'copy us':>8} {'% same-size copy':>17} {'host us':>8}")
    for row in rows:
        print(f"{_shape(tuple(row['params']['shape'])):<12} {row['backend']:<14} {row['median_us']:>9.1f}"
              f" {row['pct_copy']:>7.1f} {row['graph_us']:>9.1f} {row['graph_pct_copy']:>7.1f}"
              f" {row['copy_graph_us']:>8.1f} {100.0 * row['copy_graph_us'] / row['graph_us']:>17.1f}"
              f" {row['host_us']:>8.1f}")
    with open(out_path, "w") as handle:
        json.dump(rows, handle, indent=1, default=str)
    return 0


def errors() -> int:
    """Each bad-argument call of the GPU tests, in their order, printing before each one
    (on the H100 machine, messages that formatted a number through std::ostream inside
    the extension crashed with SIGSEGV; binding.cpp now builds them without iostreams)."""
    import torch

    from swiglu_check.kernels import cuda as cuda_kernels
    from swiglu_check.ops import preset

    def bf16(*shape, dtype=torch.bfloat16):
        return torch.randn(shape, device="cuda").to(dtype)

    op = preset("deepseek-v4")
    cases = [
        ("cpu x", lambda: (torch.randn(4, 16), None)),
        ("float64 x", lambda: (bf16(4, 16, dtype=torch.float64), None)),
        ("odd last dim", lambda: (bf16(4, 15), None)),
        ("last-dim stride 2", lambda: (bf16(4, 32)[:, ::2], None)),
        ("out shape", lambda: (bf16(4, 16), bf16(4, 7))),
        ("out dtype", lambda: (bf16(4, 16), bf16(4, 8, dtype=torch.float16))),
        ("out on cpu", lambda: (bf16(4, 16), torch.empty(4, 8, dtype=torch.bfloat16))),
        ("out last-dim stride", lambda: (bf16(4, 16), bf16(4, 16)[:, ::2])),
        ("out expanded", lambda: (bf16(4, 16), bf16(1, 8).expand(4, 8))),
        ("transposed x", lambda: (bf16(4, 6, 16).transpose(0, 1), None)),
    ]
    for name, make in cases:
        print(f"{name}: ", end="", flush=True)
        x, out = make()
        try:
            cuda_kernels.act_and_mul(x, op, out=out)
            print("no error raised")
        except RuntimeError as exc:
            print(str(exc).splitlines()[0])
    x = bf16(8, 32)
    for name, args in [("odd, functional, direct", (bf16(4, 15),)), ("overlap", (x,))]:
        print(f"{name}: ", end="", flush=True)
        try:
            if name == "overlap":
                torch.ops.swiglu_check.act_and_mul.out(x, "silu", 1.0, 0.0, None, "halves", "pre",
                                                       out=x.view(-1)[:128].view(8, 16))
            else:
                torch.ops.swiglu_check.act_and_mul(*args)
            print("no error raised")
        except RuntimeError as exc:
            print(str(exc).splitlines()[0])
    return 0


def main(argv: list[str]) -> int:
    commands = {"build": build, "matrix": matrix, "targets": targets, "grid": grid, "errors": errors}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
