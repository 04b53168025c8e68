"""The Triton W4A16 GEMM (interpreted on the CPU, compiled on a GPU) and the
`linear-w4a16` check kind, including planted bugs that must FAIL."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.cli import cli
from swiglu_check.kernels.w4a16.backends import gemm_backend
from swiglu_check.kernels.w4a16.configs import GemmConfig, choose_split_k, pick_config
from swiglu_check.dtypes import ulp_distance
from swiglu_check.kernels.w4a16.gemm import INTERPRETED, w4a16_matmul
from swiglu_check.kinds.w4a16_common import ideal_output
from swiglu_check.references import fp4

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_problem(fmt: str, m: int, k: int, n: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) / k**0.5
    q = fp4.quantize(w, fmt).to(DEVICE)
    x = torch.randn(m, k, generator=g).to(dtype).to(DEVICE)
    exact = x.double() @ fp4.dequantize(q).T
    return x, q, exact


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).norm() / b.norm())


# (config, shape): the dot kernel with and without split-K, the GEMV kernel, a K tail
CONFIGS = [
    (GemmConfig(16, 16, 64, split_k=1, num_stages=1), (5, 96, 48)),
    (GemmConfig(16, 16, 32, split_k=3, num_stages=1), (17, 96, 40)),
    (GemmConfig(32, 16, 64, split_k=2, num_stages=1), (3, 160, 33)),
    (GemmConfig(16, 1, 64, split_k=1, num_stages=1), (2, 96, 20)),
    (GemmConfig(16, 1, 32, split_k=2, num_stages=1), (1, 128, 16)),
    (GemmConfig(32, 16, 64, split_k=1, num_stages=1, deq=1), (5, 96, 48)),
    (GemmConfig(16, 16, 64, split_k=2, num_stages=1, deq=3), (5, 192, 40)),  # K-permuted order
    # contiguous scale loads: splits of one step (the prefetch crosses into the next split
    # and, for the last, past K), then a K tail (per-block clamping instead)
    (GemmConfig(16, 16, 32, split_k=3, num_stages=1, deq=4), (17, 96, 40)),
    (GemmConfig(32, 16, 64, split_k=2, num_stages=1, deq=4), (3, 256, 33)),
    (GemmConfig(16, 16, 64, split_k=1, num_stages=1, deq=4), (5, 160, 48)),
]


@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("config,shape", CONFIGS, ids=[c.label + f"-{s}" for c, s in CONFIGS])
def test_kernel_matches_fp32_reference(fmt: str, dtype: str, config: GemmConfig, shape: tuple) -> None:
    if config.block_k % fp4.BLOCK_SIZE[fmt]:
        pytest.skip("block_k must be a multiple of the format's block")
    if config.deq == 1 and dtype == "bf16" and INTERPRETED:
        pytest.skip("Triton 3.9's interpreter computes bf16 arithmetic on the raw bits")
    m, k, n = shape
    x, q, exact = make_problem(fmt, m, k, n, DTYPES[dtype])
    y = w4a16_matmul(x, q, config=config)
    assert y.shape == (m, n) and y.dtype == x.dtype
    # fp32 accumulation, one rounding: at most one ULP from the ideal output (exact
    # rounded once; by truncation for bf16 under the interpreter), and about its error
    ideal, _ = ideal_output(exact, x.dtype, INTERPRETED)
    assert int(ulp_distance(y, ideal).max()) <= 1
    assert rel_l2(y, exact) <= 1.5 * rel_l2(ideal, exact) + 1e-12


def extreme_problem(fmt: str, dtype: torch.dtype, m: int = 5, k: int = 128, n: int = 48, seed: int = 3):
    """A weight whose block scales are all extremes, 10% of blocks zero as the quantizers
    write them (scale byte 0, zero codes), and x = +-[1, 2) with 7 significant bits.

    NVFP4: e4m3 subnormals 2^-9, 2^-8, 7 * 2^-9, the smallest normal 2^-6, 416 and 448
    (weights from 2^-10 to 2688, exact in fp16 and bf16), global scale 2^-12 so that fp16
    outputs stay finite. MXFP4: bf16, E8M0 2^-118 .. 2^113: below that a product of a
    weight and x may be an fp32 subnormal (tensor cores may flush those), above it recipe
    0 overflows (it scales the block scale by 2^14 in fp32); fp16, the documented range
    2^-23 .. 2^13 (weights down to the fp16 subnormal 2^-24) with x scaled by 2^-12 so
    that outputs stay finite."""
    g = torch.Generator().manual_seed(seed)
    blocks = k // fp4.BLOCK_SIZE[fmt]
    if fmt == "nvfp4":
        extremes, global_scale = [0x01, 0x02, 0x07, 0x08, 0x7D, 0x7E], 2.0**-12
    else:
        lo, hi = (127 - 23, 127 + 13) if dtype == torch.float16 else (127 - 118, 127 + 113)
        extremes, global_scale = [lo, lo + 1, 127, hi - 1, hi], 1.0
    scales = torch.tensor(extremes, dtype=torch.uint8)[torch.randint(0, len(extremes), (n, blocks), generator=g)]
    codes = torch.randint(0, 16, (n, blocks, fp4.BLOCK_SIZE[fmt]), dtype=torch.uint8, generator=g)
    zero = torch.rand(n, blocks, generator=g) < 0.1
    scales[zero], codes[zero] = 0, 0
    q = fp4.FP4Weight(fmt, fp4.pack_fp4(codes.reshape(n, k)), scales, torch.tensor(global_scale))
    x = (1 + torch.randint(0, 128, (m, k), generator=g) / 128) * (torch.randint(0, 2, (m, k), generator=g) * 2 - 1)
    if fmt == "mxfp4" and dtype == torch.float16:
        x = x * 2.0**-12
    x = x.to(dtype)
    exact = x.double() @ fp4.dequantize(q).T
    return x.to(DEVICE), q.to(DEVICE), exact.to(DEVICE)


EXTREME_CONFIGS = [GemmConfig(16, 16, 64, split_k=2, num_stages=1, deq=deq) for deq in (0, 2, 3, 4)]


@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("config", EXTREME_CONFIGS, ids=[c.label for c in EXTREME_CONFIGS])
def test_extreme_scales_are_exact(fmt: str, dtype: str, config: GemmConfig) -> None:
    """Every recipe, extreme block scales included, stays within one ULP of the exact
    product on the same dequantized weights (on a GPU: the inline-PTX decoders)."""
    x, q, exact = extreme_problem(fmt, DTYPES[dtype])
    ideal, _ = ideal_output(exact, x.dtype, INTERPRETED)
    assert bool(torch.isfinite(ideal).all())
    y = w4a16_matmul(x, q, config=config)
    assert int(ulp_distance(y, ideal).max()) <= 1
    assert rel_l2(y, exact) <= 1.5 * rel_l2(ideal, exact) + 1e-12


@pytest.mark.parametrize("fmt", fp4.FORMATS)
def test_split_k_is_deterministic_and_matches(fmt: str) -> None:
    x, q, exact = make_problem(fmt, 4, 256, 32, torch.float16)
    one = w4a16_matmul(x, q, config=GemmConfig(16, 16, 64, split_k=1, num_stages=1))
    four = [w4a16_matmul(x, q, config=GemmConfig(16, 16, 64, split_k=4, num_stages=1)) for _ in range(2)]
    assert torch.equal(four[0], four[1])
    assert (one.float() - four[0].float()).abs().max() <= 2 * torch.finfo(torch.float16).eps * one.float().abs().max()


def test_empty_and_bad_arguments() -> None:
    x, q, _ = make_problem("nvfp4", 0, 64, 16, torch.bfloat16)
    assert w4a16_matmul(x, q).shape == (0, 16)
    with pytest.raises(ValueError, match="K mismatch"):
        w4a16_matmul(torch.zeros(2, 32, dtype=torch.bfloat16, device=DEVICE), q)
    with pytest.raises(ValueError, match="bf16 or fp16"):
        w4a16_matmul(torch.zeros(2, 64, device=DEVICE), q)
    with pytest.raises(ValueError, match="unknown planted bug"):
        w4a16_matmul(torch.zeros(2, 64, dtype=torch.bfloat16, device=DEVICE), q, plant="typo")


def test_pick_config_splits_k_from_the_shape(monkeypatch) -> None:
    from swiglu_check.kernels.w4a16 import configs

    monkeypatch.delenv(configs.TABLE_ENV, raising=False)
    cfg = pick_config(1, 4096, 14336, interpreted=False, fmt="mxfp4")
    assert cfg.block_k % 32 == 0 and cfg.split_k >= 1
    small = pick_config(1, 64, 64, interpreted=False, fmt="nvfp4")
    assert small.split_k == 1  # K too short to split
    wide = GemmConfig(64, 16, 256, split_target=256)
    assert choose_split_k(wide, 16, 4096, 14336) == 4  # 64 programs -> 4 splits of 3584
    assert choose_split_k(wide, 16, 14336, 4096) == 1  # 224 programs already
    assert choose_split_k(wide, 16, 1024, 1024) == 2  # at least two K steps per split
    assert choose_split_k(GemmConfig(64, 16, 256), 16, 64, 1 << 20) == 1  # no target: no split


def test_pick_config_takes_split_target_264_for_mxfp4_at_64_tokens(monkeypatch) -> None:
    """The GEMM tables differ only in the M = 64 bucket's split target (configs.py: 132 for
    NVFP4, 264 for MXFP4), which splits K in 4 instead of 2 where 64 programs cover N."""
    from swiglu_check.kernels.w4a16 import configs

    monkeypatch.delenv(configs.TABLE_ENV, raising=False)
    assert set(configs.GPU_TABLES) == set(fp4.FORMATS)
    for m in (1, 16):
        assert pick_config(m, 4096, 4096, interpreted=False, fmt="nvfp4") == \
            pick_config(m, 4096, 4096, interpreted=False, fmt="mxfp4")
    nv, mx = (pick_config(64, 4096, 4096, interpreted=False, fmt=fmt) for fmt in ("nvfp4", "mxfp4"))
    assert (nv.split_target, mx.split_target) == (132, 264)
    assert (nv.split_k, mx.split_k) == (2, 4)  # 64 x 4096 x 4096: 64 programs of 64 features
    assert replace(mx, split_target=132, split_k=2) == nv  # same tiles and recipe
    assert (nv.block_m, nv.deq) == (64, 4)
    # 64 x 14336 x 4096 (K 14336) splits like 4096 x 4096; 224 programs (N 14336) are past both targets
    assert [pick_config(64, 4096, 14336, interpreted=False, fmt=f).split_k for f in ("nvfp4", "mxfp4")] == [2, 4]
    assert [pick_config(64, 14336, 4096, interpreted=False, fmt=f).split_k for f in ("nvfp4", "mxfp4")] == [1, 1]
    # the last bucket takes every larger M (16 x 64 programs: past 264, so no split)
    assert pick_config(1000, 4096, 4096, interpreted=False, fmt="mxfp4") == replace(mx, split_k=1)


def test_pick_config_interpreted_is_the_interpreter_config_for_both_formats() -> None:
    from swiglu_check.kernels.w4a16.configs import INTERPRETER_CONFIG

    for fmt in fp4.FORMATS:
        assert pick_config(64, 4096, 4096, interpreted=True, fmt=fmt) == INTERPRETER_CONFIG


@pytest.mark.parametrize("interpreted", [False, True])
def test_pick_config_refuses_an_unknown_format_with_one_line(interpreted: bool) -> None:
    with pytest.raises(ValueError) as caught:
        pick_config(64, 4096, 4096, interpreted=interpreted, fmt="fp8")
    assert "unknown FP4 format 'fp8'" in str(caught.value) and "\n" not in str(caught.value)


def test_table_round_trips_through_json(tmp_path, monkeypatch) -> None:
    """A list of rows overrides both formats' tables; block_k is rounded up to each
    format's scale block (48 -> 48 for NVFP4, 64 for MXFP4)."""
    from swiglu_check.kernels.w4a16 import configs, tables

    table = ((1, GemmConfig(16, 1, 512, num_warps=8, split_target=264)), (1 << 30, GemmConfig(128, 16, 48)))
    path = tmp_path / "table.json"
    path.write_text(tables.table_json(table))
    assert tables.load_table(str(path), GemmConfig) == table
    monkeypatch.setenv(configs.TABLE_ENV, str(path))
    for fmt in fp4.FORMATS:
        assert pick_config(1, 4096, 4096, interpreted=False, fmt=fmt).block_n == 16
        assert pick_config(7, 4096, 4096, interpreted=False, fmt=fmt).block_n == 128
    assert pick_config(7, 4096, 4096, interpreted=False, fmt="nvfp4").block_k == 48
    assert pick_config(7, 4096, 4096, interpreted=False, fmt="mxfp4").block_k == 64


def test_tables_by_format_override_each_format(tmp_path, monkeypatch) -> None:
    """The override file's object form replaces each format's table; the built-in tables
    written that way (they differ, so as an object) pick what the built-in ones do."""
    from swiglu_check.kernels.w4a16 import configs, tables

    shapes = [(m, n, k) for m in (1, 16, 64, 200) for n, k in ((4096, 4096), (14336, 4096), (4096, 14336))]
    monkeypatch.delenv(configs.TABLE_ENV, raising=False)
    built_in = {(s, f): pick_config(*s, interpreted=False, fmt=f) for s in shapes for f in fp4.FORMATS}
    path = tmp_path / "built-in.json"
    path.write_text(tables.tables_json(configs.GPU_TABLES))
    assert set(json.loads(path.read_text())) == set(fp4.FORMATS)
    monkeypatch.setenv(configs.TABLE_ENV, str(path))
    assert {(s, f): pick_config(*s, interpreted=False, fmt=f) for s in shapes for f in fp4.FORMATS} == built_in

    narrow, wide = GemmConfig(32, 16, 128, deq=2), GemmConfig(128, 64, 256, deq=4, split_target=528)
    path = tmp_path / "differ.json"
    path.write_text(tables.tables_json({"nvfp4": ((1 << 30, narrow),), "mxfp4": ((16, narrow), (1 << 30, wide))}))
    monkeypatch.setenv(configs.TABLE_ENV, str(path))
    assert replace(pick_config(64, 4096, 4096, interpreted=False, fmt="nvfp4"), split_k=0) == narrow
    assert replace(pick_config(64, 4096, 4096, interpreted=False, fmt="mxfp4"), split_k=0) == wide
    assert replace(pick_config(16, 4096, 4096, interpreted=False, fmt="mxfp4"), split_k=0) == narrow


def run_backend(backend, dtypes="bf16,fp16", shapes="16x96x128"):  # >= 2048 outputs to judge
    settings = api.build_settings(dtypes=dtypes, shapes=shapes, device=DEVICE)
    return api.run([backend], settings)


# the default config, and DEQ 4's contiguous scale loads (K a multiple of block_k)
PLANTED_RUNS = [({}, "16x96x128"), ({"config": GemmConfig(16, 16, 64, split_k=2, num_stages=1, deq=4)}, "16x256x128")]


@pytest.mark.parametrize("plant", ["nibble-swap", "scale-off-by-one"])
@pytest.mark.parametrize("options,shapes", PLANTED_RUNS, ids=["default", "deq4"])
def test_planted_bugs_fail_through_the_runner(plant: str, options: dict, shapes: str) -> None:
    backend = gemm_backend(f"planted-{plant}", fp4.FORMATS, "planted bug", plant=plant, **options)
    report = run_backend(backend, shapes=shapes)
    assert len(report.results) == 4
    for result in report.results:
        assert result.verdict == "FAIL", result.case_id
        assert result.metrics["floor_ratio"] > 10, result.metrics
        assert "floor ratio" in result.reasons[0]
    assert report.exit_code == 1


def test_real_backends_pass_through_the_runner() -> None:
    report = api.check(["w4a16-nvfp4", "w4a16-mxfp4", "torch-w4a16"], dtypes="bf16,fp16",
                       shapes="16x96x128", device=DEVICE)
    assert report.passed and len(report.results) == 8
    for result in report.results:
        assert result.metrics["floor_ratio"] < 1.2, result.case_id
        assert 0.05 < result.metrics["quant_rel_l2"] < 0.2  # information only


def test_cli_run_and_bad_shape() -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["run", "--backend", "w4a16-mxfp4", "--dtype", "bf16", "--shape", "16x64x128",
                             "--device", DEVICE])
    assert ok.exit_code == 0, ok.output
    assert "w4a16-mxfp4/mxfp4/bf16/16x64x128/s0" in ok.output
    bad = runner.invoke(cli, ["run", "--backend", "w4a16-nvfp4", "--shape", "3x40x32", "--device", DEVICE])
    assert bad.exit_code == 2
    assert "not a multiple of nvfp4's block size 16" in bad.output
    assert "Traceback" not in bad.output


def test_case_ids_round_trip() -> None:
    from swiglu_check.kinds import get_kind

    kind = get_kind("linear-w4a16")
    case = kind.parse_case_id("w4a16-nvfp4", "nvfp4/bf16/16x4096x14336/s3")
    assert case.case_id == "w4a16-nvfp4/nvfp4/bf16/16x4096x14336/s3"


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("m", [1, 2, 16, 17, 64, 100, 256])
def test_gpu_table_configs_are_exact(fmt: str, m: int) -> None:
    for dtype in DTYPES.values():
        x, q, exact = make_problem(fmt, m, 4096, 1536, dtype, seed=m)
        y = w4a16_matmul(x, q)
        assert rel_l2(y, exact) <= 1.2 * rel_l2(exact.to(dtype), exact)


@pytest.mark.gpu
@pytest.mark.parametrize("plant", ["nibble-swap", "scale-off-by-one"])
@pytest.mark.parametrize("deq", [None, 4])
def test_gpu_planted_bugs_fail(plant: str, deq: int | None) -> None:
    # the NVFP4 table's M = 64 tiles for both formats (MXFP4's differ in the split target only)
    options = {} if deq is None else {"config": replace(pick_config(64, 1024, 4096, interpreted=False, fmt="nvfp4"),
                                                         deq=deq)}
    backend = gemm_backend(f"planted-{plant}", fp4.FORMATS, "planted bug", plant=plant, **options)
    report = run_backend(backend, shapes="16x4096x1024")
    assert [r.verdict for r in report.results] == ["FAIL"] * 4


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("m", [64, 100])
def test_gpu_deq4_equals_deq2_bit_for_bit(fmt: str, m: int) -> None:
    """DEQ 4 changes how the scales are loaded and converted, not the weights or the
    order of the products: with the M = 64 table tiles its output is DEQ 2's, bit for bit."""
    for dtype in DTYPES.values():
        x, q, _ = make_problem(fmt, m, 4096, 1536, dtype, seed=m)
        base = pick_config(m, 1536, 4096, interpreted=False, fmt=fmt)
        y2, y4 = (w4a16_matmul(x, q, config=replace(base, deq=deq)) for deq in (2, 4))
        assert torch.equal(y2, y4)


@pytest.mark.gpu
def test_gpu_split_k_is_deterministic() -> None:
    x, q, _ = make_problem("nvfp4", 8, 14336, 512, torch.bfloat16)
    config = GemmConfig(64, 16, 256, split_k=8, num_warps=4, num_stages=3)
    outs = [w4a16_matmul(x, q, config=config) for _ in range(5)]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
def test_gpu_quantization_matches_the_cpu_bytes(fmt: str) -> None:
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(5)) * 0.02
    on_cpu, on_gpu = fp4.quantize(w, fmt), fp4.quantize(w.cuda(), fmt)
    assert torch.equal(on_cpu.packed, on_gpu.packed.cpu()) and torch.equal(on_cpu.scales, on_gpu.scales.cpu())
    assert torch.equal(on_cpu.global_scale, on_gpu.global_scale.cpu())


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run uses the interpreter (no CUDA device)")
def test_tuner_ab_runs_both_recipes_through_the_interpreter() -> None:
    """`scripts/tune_w4a16.py --ab` (the GPU A/B of recipes), dry run: one row per shape,
    a time per format and recipe, every output right and DEQ 4's equal to DEQ 2's."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "tune_w4a16.py"
    done = subprocess.run([sys.executable, str(script), "--dry-run", "--ab", "2,4", "--ms", "16"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    row = line.split()
    assert row[0] == "16x256x64" and row[-1] == "n16m16k64s1w4p1" and len(row) == 2 + 2 * 4 + 1, line
    assert "!=" not in line and "WRONG" not in line, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run uses the interpreter (no CUDA device)")
def test_tuner_dry_run_writes_an_override_file_keeping_untuned_formats(tmp_path) -> None:
    """`scripts/tune_w4a16.py --dry-run --formats mxfp4`: the table file is a valid override
    (`tables.load_tables`): MXFP4's picks for the buckets timed, NVFP4's built-in table."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from swiglu_check.kernels.w4a16 import configs, tables

    script = Path(__file__).resolve().parents[1] / "scripts" / "tune_w4a16.py"
    table = tmp_path / "table.json"
    env = {k: v for k, v in os.environ.items() if k != configs.TABLE_ENV}
    done = subprocess.run([sys.executable, str(script), "--dry-run", "--formats", "mxfp4", "--ms", "16,64",
                           "--out", str(tmp_path / "tune.json"), "--table", str(table)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "nvfp4 was not tuned" in done.stdout
    loaded = tables.load_tables(str(table), GemmConfig, tuple(configs.GPU_TABLES))
    assert loaded["nvfp4"] == configs.GPU_TABLES["nvfp4"]
    assert [(top, cfg.block_m, cfg.split_k) for top, cfg in loaded["mxfp4"]] == [(16, 16, 0), (1 << 30, 64, 0)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run uses the interpreter (no CUDA device)")
def test_tuner_writes_no_table_and_exits_1_when_no_bucket_has_both_formats(tmp_path) -> None:
    """A budget spent before MXFP4's first case leaves no bucket timed for both formats: no
    table file (an empty one would break every later pick_config), exit 1."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "tune_w4a16.py"
    table = tmp_path / "table.json"
    done = subprocess.run([sys.executable, str(script), "--dry-run", "--ms", "16", "--budget-s", "0",
                           "--out", str(tmp_path / "tune.json"), "--table", str(table)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no M bucket has a pick for every format" in done.stdout and not table.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the interpreter set-up (no CUDA device)")
def test_interpreter_works_when_triton_was_imported_first() -> None:
    """torch.compile imports Triton before our module sets TRITON_INTERPRET: Triton's own
    @jit helpers are then compiled-mode functions, which the kernels must not call."""
    import os
    import subprocess
    import sys

    code = (
        "import triton.language, torch\n"
        "from swiglu_check.kernels.w4a16.gemm import w4a16_matmul\n"
        "from swiglu_check.kernels.w4a16.configs import GemmConfig\n"
        "from swiglu_check.references import fp4\n"
        "q = fp4.quantize(torch.randn(32, 64), 'nvfp4'); x = torch.randn(3, 64).half()\n"
        "for cfg in (GemmConfig(16, 16, 32, 2, 4, 1), GemmConfig(16, 1, 32, 2, 4, 1)):\n"
        "    y = w4a16_matmul(x, q, config=cfg)\n"
        "    assert (y.double() - x.double() @ fp4.dequantize(q).T).abs().max() < 0.05\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _prmt(a: int, b: int, selector: int) -> int:
    """PTX prmt.b32 (default mode, no sign replication): byte i of the result is byte
    (selector nibble i) of the 8-byte value {b, a}."""
    pool = a | (b << 32)
    return sum(((pool >> (8 * ((selector >> (4 * i)) & 7))) & 0xFF) << (8 * i) for i in range(4))


def _halves(word: int, dtype: torch.dtype) -> list[float]:
    pair = torch.tensor([word & 0xFFFF, word >> 16], dtype=torch.int32).to(torch.int16)
    return pair.view(dtype).to(torch.float64).tolist()


def _emulate_fp4x8_asm(word: int, scales: tuple[float, float, float, float], dtype: torch.dtype):
    """The inline PTX of gemm._fp4x8_asm, step by step in Python (bf16: mask-multiply-mask;
    fp16: mask-shift-multiply-add), each product rounded to the 16-bit type."""
    magic = 2.0**126 if dtype == torch.bfloat16 else 2.0**14

    def place(y: int, high: bool) -> int:
        if dtype == torch.bfloat16:
            t = y & (0x00F000F0 if high else 0x000F000F)
            return (t * (0x104 if high else 0x1040)) & 0xFFFFFFFF & 0x81C081C0
        if high:
            return (((y & 0x00700070) * 0x20) + ((y & 0x00800080) << 8)) & 0xFFFFFFFF
        return (((y & 0x00070007) * 0x200) + ((y & 0x00080008) << 12)) & 0xFFFFFFFF

    def scaled(bits: int, s: tuple[float, float]) -> list[float]:
        values = torch.tensor(_halves(bits, dtype), dtype=torch.float64)
        once = (values.to(dtype) * torch.tensor(magic, dtype=dtype)).to(dtype)
        return (once * torch.tensor(s, dtype=dtype)).to(torch.float64).tolist()

    lo, hi = [], []
    for selector, s in ((0x4140, scales[0:2]), (0x4342, scales[2:4])):
        y = _prmt(word, 0, selector)
        lo += scaled(place(y, False), s)
        hi += scaled(place(y, True), s)
    return lo, hi


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_inline_ptx_decoder_logic(dtype: torch.dtype) -> None:
    """The GPU-only decoder's bit manipulation, emulated: 4 packed bytes -> the even
    (low nibble) and odd (high nibble) weights of each byte times its block scale."""
    g = torch.Generator().manual_seed(7)
    table = torch.tensor(fp4.E2M1_VALUES, dtype=torch.float64)
    words = [0, 0xFFFFFFFF, 0x76543210, 0xFEDCBA98] + torch.randint(0, 2**31, (60,), generator=g).tolist()
    for word in words:
        scales = tuple(float(s) for s in torch.tensor([0.5, 448.0, 2.0**-9, 3.25])[torch.randperm(4, generator=g)])
        lo, hi = _emulate_fp4x8_asm(word, scales, dtype)
        codes = [(word >> (8 * i)) & 0xFF for i in range(4)]
        assert lo == [float(table[c & 0xF]) * s for c, s in zip(codes, scales)], hex(word)
        assert hi == [float(table[c >> 4]) * s for c, s in zip(codes, scales)], hex(word)


def _emulate_e4m3_asm(operand: int, dtype: torch.dtype) -> list[float]:
    """gemm._e4m3_asm on one 16-bit operand (element i in the low byte, i + 1 in the high
    one), step by step: `cvt.rn.f16x2.e4m3x2` puts the low byte's value in the low half;
    for bf16 each half goes to fp32 and `cvt.rn.bf16x2.f32 d, y, x` puts x (the low
    half's) in d's low half. Returns the values of the result's low and high halves."""
    pair = torch.tensor([operand & 0xFF, operand >> 8], dtype=torch.uint8).view(torch.float8_e4m3fn)
    halves = pair.to(torch.float16)
    if dtype == torch.bfloat16:
        halves = halves.to(torch.float32).to(torch.bfloat16)
    lo, hi = (int(h) & 0xFFFF for h in halves.view(torch.int16))
    return _halves(lo | hi << 16, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_inline_ptx_e4m3_conversion_is_exact_and_in_order(dtype: torch.dtype) -> None:
    """DEQ 4's e4m3 scale conversion (GPU only), emulated for every byte: each element
    keeps its place and its exact value (subnormals and 448 included; NaN stays NaN)."""
    codes = torch.arange(256, dtype=torch.uint8)
    exact = fp4.e4m3_decode(codes).tolist()
    for low in range(256):
        high = (low * 7 + 3) % 256
        got = _emulate_e4m3_asm(low | high << 8, dtype)
        for value, code in zip(got, (low, high)):
            assert value == exact[code] or (math.isnan(value) and math.isnan(exact[code])), (low, high, got)
