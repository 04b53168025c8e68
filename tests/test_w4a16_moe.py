"""The W4A16 MoE layer (references/moe.py, kernels/w4a16/moe.py) and the `moe-w4a16`
kind: the clamp must be applied, and the check must catch it when it is not."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.kernels.w4a16.backends import moe_call, torch_moe
from swiglu_check.kernels.w4a16.moe import _align_kernel, _next_pow2, moe_w4a16
from swiglu_check.kinds import get_kind
from swiglu_check.ops import PRESETS, OpSpec
from swiglu_check.references import fp4, moe
from swiglu_check.references import gated as ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_layer(fmt: str, dtype: torch.dtype, t=5, h=64, i=32, e=4, k=2, seed=0, x_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    w13 = fp4.quantize(torch.randn(e, 2 * i, h, generator=g) / h**0.5, fmt).to(DEVICE)
    w2 = fp4.quantize(torch.randn(e, h, i, generator=g) / i**0.5, fmt).to(DEVICE)
    x = (torch.randn(t, h, generator=g) * x_scale).to(dtype).to(DEVICE)
    routing = moe.route(torch.randn(t, e, generator=g).to(DEVICE), k)
    return x, w13, w2, routing


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).norm() / b.norm())


def test_exact_reference_matches_a_per_token_loop() -> None:
    x, w13, w2, routing = make_layer("nvfp4", torch.float16)
    op = PRESETS["deepseek-v4"]
    y = moe.exact(x, w13, w2, routing, op)
    w13d, w2d = fp4.dequantize(w13), fp4.dequantize(w2)
    for t in range(x.shape[0]):
        want = torch.zeros(x.shape[1], dtype=torch.float64, device=DEVICE)
        for s in range(routing.top_k):
            e = int(routing.ids[t, s])
            act = ref.exact((x[t].double() @ w13d[e].T)[None], op)[0]
            want += float(routing.weights[t, s]) * (act @ w2d[e].T)
        torch.testing.assert_close(y[t], want, rtol=1e-12, atol=1e-12)
    # the recipe (h and act rounded to fp16) is close to, but not, the exact layer
    assert 0 < rel(moe.recipe(x, w13, w2, routing, op), y) < 5e-3


def test_route_softmax_top_k() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]])
    r = moe.route(logits, 2)
    assert r.ids.tolist() == [[1, 2]]
    assert abs(float(r.weights.sum()) - 1.0) < 1e-6 and float(r.weights[0, 0]) > float(r.weights[0, 1])
    with pytest.raises(ValueError, match="top-k"):
        moe.route(logits, 5)


@pytest.mark.parametrize("rows,experts,block_m", [(10, 4, 16), (7, 3, 4), (130, 8, 16), (1, 16, 16)])
def test_align_groups_every_row_once(rows: int, experts: int, block_m: int) -> None:
    ids = torch.randint(0, experts, (rows,), generator=torch.Generator().manual_seed(rows)).to(DEVICE)
    p_max = -(-(rows + experts * (block_m - 1)) // block_m) * block_m
    sorted_rows = torch.full((p_max,), -1, dtype=torch.int32, device=DEVICE)
    tile_expert = torch.full((p_max // block_m,), -1, dtype=torch.int32, device=DEVICE)
    _align_kernel[(1,)](ids, sorted_rows, tile_expert, rows, experts, p_max, p_max // block_m,
                        E_P2=_next_pow2(max(experts, 2)), BLOCK_M=block_m, BR=64)
    s, te = sorted_rows.cpu(), tile_expert.cpu()
    real = s[s < rows]
    assert sorted(real.tolist()) == list(range(rows))  # every row exactly once
    assert bool((s[s >= rows] == rows).all())  # the rest is padding
    for tile, expert in enumerate(te.tolist()):
        members = s[tile * block_m:(tile + 1) * block_m]
        members = members[members < rows]
        if expert == experts:
            assert members.numel() == 0
        else:
            assert bool((ids.cpu()[members.long()] == expert).all())
            if members.numel() > 1:  # rows keep their order within an expert
                assert members.tolist() == sorted(members.tolist())


OPS = [
    PRESETS["deepseek-v4"],
    PRESETS["gpt-oss"],  # interleaved gate/up, alpha, beta
    OpSpec(activation="gelu_tanh", limit=3.0),
    OpSpec(activation="gelu", limit=4.0),
    OpSpec(limit=5.0, clamp="post"),
    PRESETS["llama"],  # unclamped
]


@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("op", OPS, ids=[f"{o.label}-L{o.limit}" for o in OPS])
def test_fused_layer_matches_exact_in_fp16(fmt: str, op: OpSpec) -> None:
    # gate pre-activations have about x's scale: 2L puts ~30% of them above L
    x, w13, w2, routing = make_layer(fmt, torch.float16, x_scale=2 * op.limit if op.clamped else 1.0)
    y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit)
    exact = moe.exact(x, w13, w2, routing, op)
    floor = rel(exact.to(torch.float16), exact)
    # one extra rounding (the activation, stored in fp16 for GEMM2): ~1.2-1.9 x the floor
    assert rel(y, exact) < 2.0 * floor
    if op.clamped:
        assert rel(y, moe.exact(x, w13, w2, routing, op, apply_clamp=False)) > 50 * floor


def test_unfused_layer_rounds_h_like_the_recipe() -> None:
    x, w13, w2, routing = make_layer("mxfp4", torch.float16, x_scale=20.0)
    op = PRESETS["deepseek-v4"]
    y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, fused=False)
    recipe = moe.recipe(x, w13, w2, routing, op)
    exact = moe.exact(x, w13, w2, routing, op)
    assert rel(y, exact) < 1.5 * rel(recipe, exact)


def test_the_limit_has_exactly_one_way_in() -> None:
    x, w13, w2, routing = make_layer("nvfp4", torch.float16)
    with pytest.raises(TypeError):
        moe_w4a16(x, w13, w2, routing.weights, routing.ids, OpSpec())  # limit is required
    with pytest.raises(ValueError, match="limit="):
        moe_w4a16(x, w13, w2, routing.weights, routing.ids, PRESETS["deepseek-v4"], limit=10.0)
    with pytest.raises(ValueError, match="limit"):
        torch_moe(x, w13, w2, routing.weights, routing.ids, PRESETS["deepseek-v4"], limit=10.0)


def dropped_limit(x, w13, w2, tw, ti, op, *, limit):
    """An engine path that never receives the limit (seeds 001, 003)."""
    return moe_call(x, w13, w2, tw, ti, op, limit=None)


def post_clamp(x, w13, w2, tw, ti, op, *, limit):
    """A path that clamps the activation's output instead of its inputs."""
    return moe_call(x, w13, w2, tw, ti, dataclasses.replace(op, clamp="post"), limit=limit)


def planted(name: str, call) -> Backend:
    return Backend(name, "moe-w4a16", call, dtypes=("bf16", "fp16"), interpreted_on=("cpu",))


def test_dropped_limit_fails_as_clamp_not_applied() -> None:
    report = api.run([planted("planted-dropped-limit", dropped_limit)],
                     api.build_settings(dtypes="bf16,fp16", device=DEVICE))
    assert len(report.results) == 4 and report.exit_code == 1
    for result in report.results:
        assert result.verdict == "FAIL", result.case_id
        assert any("clamp not applied" in reason for reason in result.reasons), result.reasons


def test_post_clamp_fails_where_it_is_visible() -> None:
    """L - silu(L) is 0.033 at L = 5: visible in fp16 (and in bf16 on a GPU). Under the
    interpreter bf16 casts truncate, and that noise hides it (see the GPU test)."""
    settings = api.build_settings(limits="5", dtypes="fp16", device=DEVICE)
    report = api.run([planted("planted-post-clamp", post_clamp)], settings)
    assert [r.verdict for r in report.results] == ["FAIL", "FAIL"]
    assert all(r.metrics["floor_ratio"] > 5 for r in report.results)
    # on the real backend the kind says that such a mix-up would be visible here
    real = api.check(["moe-w4a16"], limits="5", dtypes="fp16", device=DEVICE)
    assert real.passed and all(r.metrics["other_clamp_power"] > 5 for r in real.results)


def test_real_backends_pass_and_report_coverage() -> None:
    report = api.check(["moe-w4a16", "torch-moe-w4a16"], dtypes="bf16,fp16", device=DEVICE)
    assert report.passed and len(report.results) == 8
    for result in report.results:
        m = result.metrics
        assert 0.2 < m["gate_above"] < 0.4 and m["discriminative_power"] > 100
        assert m["floor_ratio"] < 1.6


def test_too_little_clamp_coverage_is_inconclusive() -> None:
    report = api.check(["torch-moe-w4a16"], dtypes="fp16", scale=0.1, device=DEVICE)  # gates far below L
    assert {r.verdict for r in report.results} == {"INCONCLUSIVE"}


def test_unclamped_op_passes_without_coverage() -> None:
    report = api.check(["moe-w4a16"], op="llama", dtypes="fp16", device=DEVICE)
    assert report.passed and all("gate_above" not in r.metrics for r in report.results)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CI sweep is the CPU version")
def test_ci_sweep_passes_on_the_cpu() -> None:
    runner = CliRunner()
    done = runner.invoke(cli, ["run", "--backend", "moe-w4a16", "--sweep", "dsv4-flash-ci", "--format", "json"])
    assert done.exit_code == 0, done.output[-3000:]
    assert '"PASS": 24' in done.output


def test_sweep_names_and_case_ids() -> None:
    kind = get_kind("moe-w4a16")
    settings = api.build_settings(sweep="dsv4-flash", device="cpu")
    backend = Backend("b", "moe-w4a16", moe_call, dtypes=("bf16", "fp16"))
    cases = kind.cases(backend, settings)
    assert len(cases) == 4 * 5 + 4  # NVFP4: limits x global scales; MXFP4: limits
    assert {c.op.limit for c in cases} == {5.0, 7.0, 10.0, 15.0}
    assert {c.global_exp for c in cases if c.format == "nvfp4"} == {-13, -12, -11, -10, -9}
    for case in cases[:3] + cases[-2:]:
        assert kind.parse_case_id("b", case.case_id[2:]) == case
    bad = CliRunner().invoke(cli, ["run", "--sweep", "nope"])
    assert bad.exit_code == 2 and "unknown sweep 'nope'" in bad.output


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_gpu_planted_bugs_fail(dtype: str) -> None:
    settings = api.build_settings(limits="5", dtypes=dtype, device="cuda")
    assert_plants_fail((("dropped", dropped_limit), ("post", post_clamp)), settings)


def assert_plants_fail(plants, settings) -> dict:
    """Run each (name, call) plant as a backend: both cases FAIL. Returns the reports by name."""
    reports = {}
    for name, call in plants:
        report = reports[name] = api.run([planted(name, call)], settings)
        assert [r.verdict for r in report.results] == ["FAIL", "FAIL"], (name, [r.reasons for r in report.results])
    return reports


@pytest.mark.gpu
def test_gpu_layer_replays_in_a_cuda_graph() -> None:
    x, w13, w2, routing = make_layer("nvfp4", torch.bfloat16, t=16, h=512, i=256, e=8, k=3)
    op = PRESETS["deepseek-v4"]
    eager = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


def test_gemm_choice_is_checked_and_auto_stays_off_the_cpu() -> None:
    from swiglu_check.kernels.w4a16.moe import use_cuda_gemms

    with pytest.raises(ValueError, match="gemm must be one of"):
        use_cuda_gemms("cutlass", 1, torch.device("cpu"))
    assert not use_cuda_gemms("auto", 1, torch.device("cpu"))
    assert not use_cuda_gemms("triton", 1, torch.device("cuda"))
    assert use_cuda_gemms("cuda", 64, torch.device("cuda"))
    x, w13, w2, routing = make_layer("nvfp4", torch.float16)
    with pytest.raises(ValueError, match="gemm must be one of"):
        moe_w4a16(x, w13, w2, routing.weights, routing.ids, OpSpec(), limit=None, gemm="nope")


def test_pick_config_takes_deq_4_for_nvfp4_and_3_for_mxfp4_at_16_tokens(monkeypatch) -> None:
    from swiglu_check.kernels.w4a16 import moe as kernel

    monkeypatch.setattr(kernel, "INTERPRETED", False)
    monkeypatch.delenv(kernel.TABLE_ENV, raising=False)
    assert set(kernel.GPU_TABLES) == set(fp4.FORMATS)
    for tokens in (2, 16):
        nv, mx = kernel.pick_config(tokens, "nvfp4"), kernel.pick_config(tokens, "mxfp4")
        assert (nv.deq, mx.deq) == (4, 3)
        assert nv == dataclasses.replace(mx, deq=4)  # same tiles
        assert mx == kernel.MoeConfig(block_n1=64, block_n2=128, block_m=16, block_k=128, num_warps=4,
                                      num_stages=3, deq=3)
    for tokens in (1, 17, 64, 1 << 20):  # the first and the last bucket: one config for both formats
        assert kernel.pick_config(tokens, "nvfp4") == kernel.pick_config(tokens, "mxfp4")
    assert (kernel.pick_config(1, "mxfp4").num_stages, kernel.pick_config(1, "mxfp4").deq) == (5, 3)
    assert (kernel.pick_config(64, "mxfp4").block_m, kernel.pick_config(64, "mxfp4").deq) == (32, 4)
    with pytest.raises(ValueError, match="unknown FP4 format 'fp8'"):
        kernel.pick_config(16, "fp8")


def test_environment_table_in_either_form_and_the_built_in_round_trip(tmp_path, monkeypatch) -> None:
    from swiglu_check.kernels.w4a16 import moe as kernel
    from swiglu_check.kernels.w4a16 import tables

    monkeypatch.setattr(kernel, "INTERPRETED", False)
    sizes = (1, 2, 16, 17, 64, 1 << 20)
    built_in = {(t, fmt): kernel.pick_config(t, fmt) for t in sizes for fmt in fp4.FORMATS}
    path = tmp_path / "built-in.json"
    path.write_text(tables.tables_json(kernel.GPU_TABLES, kernel.TABLE_KEY))
    assert path.read_text().startswith("{")  # the formats differ at 16 tokens
    monkeypatch.setenv(kernel.TABLE_ENV, str(path))
    assert {(t, fmt): kernel.pick_config(t, fmt) for t in sizes for fmt in fp4.FORMATS} == built_in

    one = kernel.MoeConfig(block_n1=32, deq=2)
    path = tmp_path / "list.json"  # today's form: one table for both formats
    path.write_text(tables.table_json(((1 << 30, one),), kernel.TABLE_KEY))
    monkeypatch.setenv(kernel.TABLE_ENV, str(path))
    assert kernel.pick_config(16, "nvfp4") == kernel.pick_config(16, "mxfp4") == one

    path = tmp_path / "unknown.json"
    path.write_text('{"nvfp4": [], "mxfp4": [], "mxfp6": []}')
    monkeypatch.setenv(kernel.TABLE_ENV, str(path))
    with pytest.raises(ValueError, match=re.escape(f"{path}: unknown format 'mxfp6'")):
        kernel.pick_config(16, "nvfp4")


def test_the_layer_picks_its_config_by_the_weights_format(monkeypatch) -> None:
    from swiglu_check.kernels.w4a16 import moe as kernel

    asked = []

    def pick(tokens: int, fmt: str):
        asked.append((tokens, fmt))
        return kernel.INTERPRETER_CONFIG

    monkeypatch.setattr(kernel, "pick_config", pick)
    for fmt in fp4.FORMATS:
        x, w13, w2, routing = make_layer(fmt, torch.float16, t=3)
        moe_w4a16(x, w13, w2, routing.weights, routing.ids, OpSpec(), limit=None, gemm="triton")
    assert asked == [(3, "nvfp4"), (3, "mxfp4")]


ROUTED_OPS = [PRESETS["deepseek-v4"].with_limit(5.0), PRESETS["gpt-oss"], PRESETS["llama"]]


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("tokens", [1, 2, 5])
@pytest.mark.parametrize("op", ROUTED_OPS, ids=[f"{o.label}-L{o.limit}" for o in ROUTED_OPS])
def test_gpu_routed_rows_layer_matches_exact(fmt: str, dtype: torch.dtype, tokens: int, op: OpSpec) -> None:
    """The CUDA routed-rows path: within the fused path's bound of the exact layer, far from
    the unclamped one, and equal in arithmetic to the Triton kernels (same roundings)."""
    x, w13, w2, routing = make_layer(fmt, dtype, t=tokens, h=256, i=160, e=6, k=3,
                                     x_scale=2 * op.limit if op.clamped else 1.0)
    y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, gemm="cuda")
    exact = moe.exact(x, w13, w2, routing, op)
    floor = rel(exact.to(dtype), exact)
    assert y.dtype == dtype and y.shape == x.shape
    assert rel(y, exact) < 2.0 * floor
    if op.clamped:
        assert rel(y, moe.exact(x, w13, w2, routing, op, apply_clamp=False)) > 50 * floor
    triton_y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit,
                         gemm="triton")
    # the two paths differ only in the order of fp32 sums, which flips a rounding of act or
    # y by one ulp here and there: far below the floor's scale of error
    assert rel(y, triton_y.double()) < 2.0 * floor


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("tokens", [17, 64])
def test_gpu_triton_layer_above_16_tokens_matches_exact(fmt: str, dtype: torch.dtype, tokens: int) -> None:
    """The table's largest bucket (its own recipe: deq 4's contiguous scale loads where K is
    whole blocks, GEMM1's K = 256 here, not GEMM2's 160): within the fused path's bound of
    the exact layer and far from the unclamped one."""
    op = PRESETS["deepseek-v4"].with_limit(5.0)
    x, w13, w2, routing = make_layer(fmt, dtype, t=tokens, h=256, i=160, e=6, k=3, x_scale=2 * op.limit)
    y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, gemm="triton")
    exact = moe.exact(x, w13, w2, routing, op)
    floor = rel(exact.to(dtype), exact)
    assert rel(y, exact) < 2.0 * floor
    assert rel(y, moe.exact(x, w13, w2, routing, op, apply_clamp=False)) > 50 * floor


@pytest.mark.gpu
def test_gpu_routed_rows_unfused_rounds_h_like_the_recipe() -> None:
    x, w13, w2, routing = make_layer("mxfp4", torch.float16, t=2, h=256, i=128, e=4, k=2, x_scale=20.0)
    op = PRESETS["deepseek-v4"]
    y = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, fused=False,
                  gemm="cuda")
    recipe = moe.recipe(x, w13, w2, routing, op)
    exact = moe.exact(x, w13, w2, routing, op)
    assert rel(y, exact) < 1.5 * rel(recipe, exact)


@pytest.mark.gpu
def test_gpu_auto_takes_the_routed_rows_for_decode_only() -> None:
    from swiglu_check.kernels.w4a16.moe import CUDA_MAX_TOKENS, use_cuda_gemms

    assert use_cuda_gemms("auto", 1, torch.device("cuda"))
    assert use_cuda_gemms("auto", CUDA_MAX_TOKENS, torch.device("cuda"))
    assert not use_cuda_gemms("auto", CUDA_MAX_TOKENS + 1, torch.device("cuda"))


def cuda_dropped_limit(x, w13, w2, tw, ti, op, *, limit):
    return moe_call(x, w13, w2, tw, ti, op, limit=None, gemm="cuda")


def cuda_post_clamp(x, w13, w2, tw, ti, op, *, limit):
    return moe_call(x, w13, w2, tw, ti, dataclasses.replace(op, clamp="post"), limit=limit, gemm="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_gpu_routed_rows_planted_bugs_fail_and_real_backend_passes(dtype: str) -> None:
    settings = api.build_settings(limits="5", dtypes=dtype, device="cuda")
    reports = assert_plants_fail((("dropped", cuda_dropped_limit), ("post", cuda_post_clamp)), settings)
    assert all(any("clamp not applied" in why for why in r.reasons) for r in reports["dropped"].results)
    real = api.check(["moe-w4a16-cuda"], limits="5", dtypes=dtype, device="cuda")
    assert [r.verdict for r in real.results] == ["PASS", "PASS"], [r.reasons for r in real.results]


@pytest.mark.gpu
def test_gpu_routed_rows_replay_in_a_cuda_graph() -> None:
    x, w13, w2, routing = make_layer("nvfp4", torch.bfloat16, t=1, h=512, i=256, e=8, k=3)
    op = PRESETS["deepseek-v4"]
    eager = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, gemm="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = moe_w4a16(x, w13, w2, routing.weights, routing.ids, op.with_limit(None), limit=op.limit, gemm="cuda")
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
