"""GPU-side helpers of scripts/gpu.d/30-cuda.sh (the CUDA C++ backend's part).

    python3 scripts/cuda_gpu.py build                 # build or load the extension, timed
    python3 scripts/cuda_gpu.py matrix OUT.json       # every preset x layout x input view
    python3 scripts/cuda_gpu.py targets BENCH.json... # issues 3 and 4's speed targets, per bench JSON
    python3 scripts/cuda_gpu.py errors                # every bad-argument call, one line each

Each prints a short table; `matrix` and `targets` exit 1 when something misses. Launch
configurations are timed by scripts/cuda_tune.py. Without a GPU, every command but
`targets` exits 2 with one line.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

TARGET_SHAPES = [(t, d) for t in (1024, 16384) for d in (2048, 7168, 18432)]
MIN_PCT_COPY = 90.0
MIN_PCT_COPY_FP8 = 80.0
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


def _by_backend_and_shape(timings: list[dict]) -> dict:
    """(backend, (T, D)) -> the row; for triton-fp8 the row-major-scale row where there is one."""
    found: dict = {}
    for t in timings:
        if t.get("error") or "shape" not in t.get("params", {}):
            continue
        key = (t["backend"], tuple(t["params"]["shape"]))
        column_major = t["params"].get("fp8", {}).get("column_major", False)
        if key not in found or not column_major:
            found[key] = t
    return found


def targets(*bench_paths: str) -> int:
    """Issues 3 and 4's speed targets, per bench JSON (one per timing method): triton >= 90%
    of copy and faster than torch-compile, triton-fp8 >= 80%, cuda >= 90% and at most 1.05x
    the triton time; with each backend's % same-size copy. Exit 1 when a target is missed."""
    if not bench_paths:
        print("cuda_gpu targets: give one or more bench JSON files", file=sys.stderr)
        return 2
    missed = 0
    for path in bench_paths:
        try:
            data = json.load(open(path))
        except (OSError, ValueError) as exc:
            print(f"cuda_gpu targets: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        by = _by_backend_and_shape(data["timings"])
        timing = data.get("timing", "events")
        print(f"speed targets, timing {timing} (bf16, copy {data['copy_gb_per_s']:.0f} GB/s, same timing):"
              f" triton >= {MIN_PCT_COPY:.0f}% and faster than torch-compile; triton-fp8 >= {MIN_PCT_COPY_FP8:.0f}%;"
              f" cuda >= {MIN_PCT_COPY:.0f}% and <= {MAX_SLOWER_THAN_TRITON:.2f}x the triton time")
        print(f"{'shape':<12} {'backend':<14} {'us':>8} {'% copy':>7} {'% same-size':>11} {'x torch-compile':>15}"
              f" {'x triton':>9}  verdict")
        for shape in TARGET_SHAPES:
            reference, triton = by.get(("torch-compile", shape)), by.get(("triton", shape))
            for backend in ("triton", "triton-fp8", "cuda", "torch-compile"):
                row = by.get((backend, shape))
                if row is None:
                    print(f"{_shape(shape):<12} {backend:<14} {'-':>8}  (not in this run)")
                    continue
                versus_tc = row["median_us"] / reference["median_us"] if reference and backend != "triton-fp8" else None
                versus_triton = row["median_us"] / triton["median_us"] if triton and backend == "cuda" else None
                verdict = ""
                if backend == "triton":
                    ok = row["pct_copy"] >= MIN_PCT_COPY and (versus_tc is None or versus_tc < 1.0)
                    verdict = "ok" if ok else "MISS"
                elif backend == "triton-fp8":
                    ok = row["pct_copy"] >= MIN_PCT_COPY_FP8
                    verdict = "ok" if ok else "MISS"
                elif backend == "cuda":
                    ok = row["pct_copy"] >= MIN_PCT_COPY and (versus_triton is None
                                                              or versus_triton <= MAX_SLOWER_THAN_TRITON)
                    verdict = "ok" if ok else "MISS"
                missed += verdict == "MISS"
                same = row.get("pct_same_size_copy", float("nan"))
                print(f"{_shape(shape):<12} {backend:<14} {row['median_us']:>8.1f} {row['pct_copy']:>7.1f}"
                      f" {same:>11.1f} {_fmt_ratio(versus_tc):>15} {_fmt_ratio(versus_triton):>9}  {verdict}")
    print(f"targets missed: {missed}")
    return 1 if missed else 0


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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
    commands = {"build": build, "matrix": matrix, "targets": targets, "errors": errors}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    if argv[0] != "targets":
        import torch

        if not torch.cuda.is_available():
            print(f"cuda_gpu {argv[0]}: needs a CUDA GPU and none is available (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
    return commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
