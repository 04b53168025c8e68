"""The GPU speed scripts on a machine without a GPU: they parse, fail cleanly (exit 2, one
line), and their pure parts (the targets table, the sweep report) compute the right
verdicts from made-up timings."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from swiglu_check.bench import Timing
from swiglu_check.reports.bench_table import bench_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def _load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@no_gpu
@pytest.mark.parametrize("args", [["scripts/cuda_tune.py"], ["scripts/triton_tune.py", "--no-fp8"],
                                  ["scripts/cuda_gpu.py", "build"], ["scripts/cuda_gpu.py", "errors"]])
def test_gpu_scripts_exit_two_with_one_line_without_a_gpu(args) -> None:
    done = _run(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0], done.stderr


@pytest.mark.parametrize("script", ["cuda_tune", "triton_tune"])
def test_tune_scripts_reject_a_bad_timing_with_exit_two(script) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _load(script).main(["--timing", "wallclock"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("part", sorted((SCRIPTS / "gpu.d").glob("*.sh")) + [SCRIPTS / "gpu-check"],
                         ids=lambda p: p.name)
def test_gpu_parts_are_valid_bash(part: Path) -> None:
    done = subprocess.run(["bash", "-n", str(part)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _timing(backend: str, shape: tuple[int, int], us: float, pct_copy: float, **params) -> Timing:
    return Timing(backend, f"bf16 {shape[0]}x{shape[1]}", us, us, 0.0, pct_copy, 0.0, "", False,
                  {"shape": list(shape), **params}, method="graph", same_size_copy_us=us / 2, pct_same_size_copy=50.0)


def _bench_file(tmp_path: Path, timings: list[Timing], name: str = "bench.json") -> str:
    path = tmp_path / name
    path.write_text(bench_json(timings, 3000.0, {}, "graph"))
    return str(path)


def test_targets_pass_when_every_backend_meets_its_target(tmp_path, capsys) -> None:
    cuda_gpu = _load("cuda_gpu")
    rows = []
    for shape in cuda_gpu.TARGET_SHAPES:
        rows += [_timing("torch-compile", shape, 10.0, 91.0), _timing("triton", shape, 9.9, 92.0),
                 _timing("cuda", shape, 10.3, 90.5), _timing("triton-fp8", shape, 8.0, 81.0, fp8={})]
    assert cuda_gpu.targets(_bench_file(tmp_path, rows)) == 0
    out = capsys.readouterr().out
    assert "timing graph" in out and "MISS" not in out and "targets missed: 0" in out
    assert "0.990" in out and "1.040" in out  # triton x torch-compile, cuda x triton


@pytest.mark.parametrize("change,missed", [
    (("triton", 10.1, 95.0), "triton"),  # slower than torch-compile
    (("triton", 9.9, 89.9), "triton"),  # below 90% of copy
    (("cuda", 10.5, 95.0), "cuda"),  # more than 1.05x the triton time
    (("cuda", 9.0, 89.0), "cuda"),  # below 90% of copy
    (("triton-fp8", 8.0, 79.9), "triton-fp8"),  # below 80% of copy
])
def test_targets_miss_each_failing_backend(tmp_path, capsys, change, missed) -> None:
    cuda_gpu = _load("cuda_gpu")
    shape = (1024, 7168)
    good = {"torch-compile": (10.0, 91.0), "triton": (9.9, 92.0), "cuda": (10.0, 91.0), "triton-fp8": (8.0, 81.0)}
    good[change[0]] = change[1:]
    rows = [_timing(b, s, *(good[b] if s == shape else (1.0, 99.0) if b != "torch-compile" else (2.0, 99.0)))
            for s in cuda_gpu.TARGET_SHAPES for b in good]
    assert cuda_gpu.targets(_bench_file(tmp_path, rows), _bench_file(tmp_path, rows, "second.json")) == 1
    out = capsys.readouterr().out
    misses = [line for line in out.splitlines() if line.endswith("MISS")]
    assert len(misses) == 2 and all(line.startswith("1024x7168") and f" {missed} " in line for line in misses)
    assert "targets missed: 2" in out


def test_targets_prefer_row_major_fp8_scales(tmp_path, capsys) -> None:
    cuda_gpu = _load("cuda_gpu")
    rows = [_timing("triton-fp8", (1024, 2048), 5.0, 70.0, fp8={"column_major": True}),
            _timing("triton-fp8", (1024, 2048), 4.0, 85.0, fp8={"column_major": False})]
    cuda_gpu.targets(_bench_file(tmp_path, rows))
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:2] == ["1024x2048", "triton-fp8"])
    assert "85.0" in line and line.endswith("ok")


def test_targets_without_files_or_with_a_missing_file_exit_two(tmp_path) -> None:
    cuda_gpu = _load("cuda_gpu")
    assert cuda_gpu.targets() == 2
    assert cuda_gpu.targets(str(tmp_path / "absent.json")) == 2


def test_sweep_report_picks_the_fastest_configuration_per_method() -> None:
    common = _load("gated_tune_common")

    def row(name, method, us, reference=False, mine=True, error=""):
        return {"backend": name, "timing": method, "method": method, "median_us": us, "pct_copy": 900.0 / us,
                "pct_same_size_copy": 500.0 / us, "reference": reference, "mine": mine, "error": error,
                "shape": [1024, 2048]}

    result = {"device": "test device", "op": "silu", "methods": ["events", "graph"],
              "copy_gb_per_s": {"events": 3000.0, "graph": 3000.0},
              "rows": [row("a", "events", 10.0), row("a", "graph", 7.0), row("b", "events", 9.0),
                       row("b", "graph", 8.0), row("c", "events", 1.0, error="boom"), row("c", "graph", 1.0, error="x"),
                       row("ref", "events", 12.0, reference=True, mine=False),
                       row("ref", "graph", 7.5, reference=True, mine=False)]}
    text = common.report(result, "test sweep", "ref")
    best = [line for line in text.splitlines() if " best " in line]
    assert len(best) == 2
    assert best[0].split()[:4] == ["1024x2048", "events", "best", "b"] and "x0.750 ref time" in best[0]
    assert best[1].split()[:4] == ["1024x2048", "graph", "best", "a"] and f"x{7.0 / 7.5:.3f} ref time" in best[1]
    assert "error: boom" in text
    assert math.isclose(common._ratio(result["rows"][0], result["rows"][6]), 10.0 / 12.0)


def test_sweep_shapes_default_to_the_issue_shapes() -> None:
    common = _load("gated_tune_common")
    assert common.parse_shapes(None) == [(1024, 2048), (1024, 7168), (1024, 18432),
                                         (16384, 2048), (16384, 7168), (16384, 18432)]
    assert common.parse_shapes(["8x16"]) == [(8, 16)]
    assert json.loads(json.dumps(common.ISSUE_SHAPES))


def test_sweep_times_every_candidate_by_every_method_on_fake_timers(monkeypatch) -> None:
    """The sweep's plumbing on the CPU: fake timers (time = output elements x a per-method
    factor) and a fake large copy; the reference and the ratios come out of the rows."""
    from swiglu_check import bench
    from swiglu_check.references import gated as ref

    common = _load("gated_tune_common")
    factor = {"events": 1e-6, "graph": 0.5e-6}

    def fake(method):
        def timer(call, sets, **_):
            out = call(0)
            return [out.numel() * factor[method]]
        return timer

    monkeypatch.setitem(bench.TIMERS, "events", fake("events"))
    monkeypatch.setitem(bench.TIMERS, "graph", fake("graph"))
    monkeypatch.setattr(bench, "copy_bandwidth", lambda device: 1e9)

    def candidates(tokens, width):
        from swiglu_check.ops import preset

        op = preset("deepseek-v4")
        return [common.Candidate("half", lambda x: ref.fused(x, op)[:, : width // 2]),
                common.Candidate("full", lambda x: ref.fused(x, op)),
                common.Candidate("ref", lambda x: ref.fused(x, op), reference=True, mine=False)]

    result = common.sweep(candidates, [(4, 16)], lambda t, d, size: 3 * t * d * size, device="cpu")
    assert len(result["rows"]) == 6 and result["methods"] == ["events", "graph"]
    text = common.report(result, "fake", "ref")
    best = [line.split() for line in text.splitlines() if " best " in line]
    assert [b[:4] for b in best] == [["4x16", "events", "best", "half"], ["4x16", "graph", "best", "half"]]
    assert all("x0.500" in " ".join(b) for b in best)
    half_graph = next(r for r in result["rows"] if r["backend"] == "half" and r["timing"] == "graph")
    assert half_graph["median_us"] == pytest.approx(32 * 0.5e-6 * 1e3)
    assert half_graph["pct_same_size_copy"] == pytest.approx(100.0 * 96 / 32)  # copy moves 1.5*T*D elements


def test_candidate_lists_build_without_a_gpu() -> None:
    cuda_tune, triton_tune = _load("cuda_tune"), _load("triton_tune")
    names = [c.name for c in cuda_tune.candidates(1024, 7168)]
    assert names[: len(cuda_tune.CONFIGS)] == [f"cuda {n}" for n in cuda_tune.CONFIGS]
    assert "torch-compile" in names
    gated = triton_tune.gated_candidates(1024, 2048)
    assert gated[0].name.startswith("triton default") and any(c.reference for c in gated)
    assert all(c.mine for c in gated if not c.reference)
    assert len(triton_tune.fp8_candidates(1024, 2048)) == len(triton_tune.FP8_CONFIGS) + 1


def test_moe_tuner_writes_a_table_per_format_only_when_the_picks_differ(tmp_path) -> None:
    from swiglu_check.kernels.w4a16 import tables
    from swiglu_check.kernels.w4a16.moe import TABLE_KEY, MoeConfig

    tuner = _load("tune_moe_w4a16")
    d3, d4, wide = MoeConfig(deq=3), MoeConfig(deq=4), MoeConfig(block_m=32, deq=4)
    timed = {1: {"nvfp4": {d3: 10.0, d4: 11.0}, "mxfp4": {d3: 9.0, d4: 12.0}},  # made-up us
             16: {"nvfp4": {d3: 213.0, d4: 177.0}, "mxfp4": {d3: 154.0, d4: 174.0}},
             64: {"nvfp4": {wide: 187.0, d3: 300.0}, "mxfp4": {wide: 191.0, d3: 250.0}}}
    picked = tuner.pick_tables(timed)
    assert picked == {"nvfp4": ((1, d3), (16, d4), (1 << 30, wide)), "mxfp4": ((1, d3), (16, d3), (1 << 30, wide))}
    path = tmp_path / "differ.json"
    path.write_text(tables.tables_json(picked, TABLE_KEY))
    assert set(json.loads(path.read_text())) == {"nvfp4", "mxfp4"}
    assert tables.load_tables(str(path), MoeConfig, tuner.FORMATS, TABLE_KEY) == picked

    timed[16]["nvfp4"][d4] = 250.0  # now both formats pick deq 3 at 16 tokens
    timed[64]["mxfp4"] = {}  # and a bucket one format timed nothing in is left out of both
    picked = tuner.pick_tables(timed)
    assert picked["nvfp4"] == picked["mxfp4"] == ((1, d3), (16, d3))
    path = tmp_path / "agree.json"
    path.write_text(tables.tables_json(picked, TABLE_KEY))
    assert isinstance(json.loads(path.read_text()), list)
    assert tables.load_table(str(path), MoeConfig, TABLE_KEY) == picked["nvfp4"]


def test_gemm_tuner_picks_each_formats_split_target_from_its_own_cases(tmp_path) -> None:
    """tune_w4a16.pick_tables: per format, the (config, split target) with the best geometric-
    mean slowdown over that format's cases; the tables written as one list when they agree."""
    from dataclasses import replace

    from swiglu_check.kernels.w4a16 import tables
    from swiglu_check.kernels.w4a16.configs import GPU_TABLES, GemmConfig

    tuner = _load("tune_w4a16")
    base = GemmConfig(64, 64, 256, 1, 4, 3, 4)
    # made-up us per split of K, shaped like session 8's M = 64 data: (K, N) -> {split: us};
    # 4096 x 14336 has 224 programs (split 1 up to target 264), the others 64 (132: 2, 264: 4)
    split_us = {"nvfp4": {(4096, 14336): {1: 44.0, 2: 46.0, 4: 50.0},
                          (14336, 4096): {1: 60.0, 2: 38.0, 4: 39.0, 8: 42.0},
                          (4096, 4096): {1: 25.0, 2: 15.8, 4: 16.5, 8: 18.0}},
                "mxfp4": {(4096, 14336): {1: 34.4, 2: 36.0, 4: 40.0},
                          (14336, 4096): {1: 58.0, 2: 39.6, 4: 35.1, 8: 40.0},
                          (4096, 4096): {1: 24.0, 2: 15.7, 4: 15.1, 8: 17.0}}}

    def tune(split_us: dict) -> dict:
        cases, times = {}, {}
        for fmt, shapes in split_us.items():
            for (k, n), by_split in shapes.items():
                cases[(fmt, 64, k, n)] = {"best_us": min(by_split.values()), "best": base.label}
                times.update({(fmt, 64, k, n, base.label, split): us for split, us in by_split.items()})
        small = replace(base, block_m=16)  # M = 16 timed for NVFP4 only: that bucket is left out of both
        cases[("nvfp4", 16, 4096, 4096)] = {"best_us": 10.0, "best": small.label}
        times[("nvfp4", 16, 4096, 4096, small.label, 1)] = 10.0
        picked = tuner.pick_tables(cases, times, {c.label: c for c in (base, small)}, ["nvfp4", "mxfp4"])
        assert [p.cases for p in picked["mxfp4"]] == [tuple(key for key in cases if key[:2] == ("mxfp4", 64))]
        return {fmt: tuple((p.top, p.config) for p in picks) for fmt, picks in picked.items()}

    picked = tune(split_us)
    pick = replace(base, split_k=0, split_target=132)
    assert picked == {"nvfp4": ((1 << 30, pick),), "mxfp4": ((1 << 30, replace(pick, split_target=264)),)}
    path = tmp_path / "differ.json"
    path.write_text(tables.tables_json(picked))
    assert tables.load_tables(str(path), GemmConfig, tuple(GPU_TABLES)) == picked

    picked = tune({"nvfp4": split_us["nvfp4"], "mxfp4": split_us["nvfp4"]})  # same times: same pick
    assert picked == {"nvfp4": ((1 << 30, pick),), "mxfp4": ((1 << 30, pick),)}
    assert isinstance(json.loads(tables.tables_json(picked)), list)


def test_ncu_stalls_totals_reasons_and_ranks_instructions(tmp_path) -> None:
    header = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed",
              "stall_long_sb", "stall_wait", "stall_long_sb (Not Issued)"]
    rows = [["0x0", "  LDS R1, [R2]", "3", "8", "1", "2", "1"],
            ["0x10", "  PRMT R3, R1, 0x7170, RZ", "40", "8", "39", "1", "39"],
            ["0x20", "  EXIT", "0", "8", "0", "0", "0"]]
    path = tmp_path / "sass.csv"
    path.write_text('"Kernel Name","k"\n' + "\n".join(",".join(f'"{v}"' for v in r) for r in [header, *rows]) + "\n")
    done = _run("scripts/ncu_stalls.py", str(path), "--top", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "43 samples over 3 instructions"  # "Not Issued" columns are not counted twice
    assert lines[1].split()[:2] == ["long_sb", "40"] and lines[2].split()[:2] == ["wait", "3"]
    listed = lines[[line.split()[:1] for line in lines].index(["#"]) + 1:]
    assert [line.split()[:2] for line in listed] == [["1", "40"], ["0", "3"]]  # most samples first, top 2
    assert "PRMT" in listed[0] and "long_sb:39" in listed[0]
    bad = _run("scripts/ncu_stalls.py", str(ROOT / "README.md"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
