"""The tool must fail wrong kernels as surely as it passes right ones."""

import json
import math

import pytest
import torch

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref
from swiglu_check.results import ERROR, FAIL, INCONCLUSIVE, PASS


def backend(name, fn, **kw):
    return Backend(name=name, kind="gated", call=fn, **kw)


def ignores_clamp(x, op):
    return ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, None, op.layout))


def fused(x, op):
    return ref.fused(x, op)


def check(*backends, **kw):
    kw.setdefault("shapes", ["32x256", "5x411"])
    kw.setdefault("device", "cpu")
    return api.check(list(backends), **kw)


def test_fused_rounding_passes_near_one():
    report = check(backend("fused", fused), dtypes="bf16,fp16", limits="7,none")
    assert report.exit_code == 0
    for r in report.results:
        assert r.verdict == PASS
        assert 0.97 <= r.metrics["floor_ratio"] <= 1.03


def test_eager_passes_with_an_extra_rounding():
    report = check(backend("eager", ref.eager), dtypes="bf16", limits="7")
    assert report.passed
    assert all(1.1 < r.metrics["floor_ratio"] < 1.6 for r in report.results)


def test_backend_that_ignores_the_clamp_fails_and_is_named():
    report = check(backend("no-clamp", ignores_clamp), backend("fused", fused), dtypes="bf16,fp16,fp32", limits="7,10")
    assert report.exit_code == 1
    for r in report.results:
        if r.backend == "no-clamp":
            assert r.verdict == FAIL
            assert any("clamp not applied" in reason for reason in r.reasons)
            assert r.metrics["floor_ratio"] > 100
        else:
            assert r.verdict == PASS


def test_rounding_the_activation_is_seen_but_passes():
    report = check(backend("round-act", ref.round_act), dtypes="bf16", limits="7")
    ratios = [r.metrics["floor_ratio"] for r in report.results]
    assert report.passed and all(1.05 < v < 2.0 for v in ratios)


@pytest.mark.parametrize("wrong", [
    lambda x, op: ref.fused(x, OpSpec("gelu", op.alpha, op.beta, op.limit, op.layout)),
    lambda x, op: ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, op.limit, "interleaved")),
    lambda x, op: ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, op.limit * 1.02, op.layout)),
    lambda x, op: (ref.fused(x, op).float() * 1.01).to(x.dtype),
])
def test_wrong_math_fails(wrong):
    report = check(backend("wrong", wrong), dtypes="bf16", limits="7")
    assert [r.verdict for r in report.results] == [FAIL, FAIL]


def post_clamp(x, op):
    return ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, op.limit, op.layout, "post"))


def test_post_clamp_fails_where_it_differs_by_more_than_rounding():
    # silu(L) is within a fraction of a bf16 ULP of L for L >= 7, so a post clamp is only
    # visible at fp16/fp32 there, or at a small limit (measured: bf16 L=7 ratio 1.05, L=3 ratio 33)
    report = check(backend("post", post_clamp), dtypes="fp16,fp32", limits="7")
    assert {r.verdict for r in report.results} == {FAIL}
    report = check(backend("post", post_clamp), dtypes="bf16", limits="3")
    assert {r.verdict for r in report.results} == {FAIL}


def test_wrong_shape_and_raise_are_errors_and_others_still_report():
    def raises(x, op):
        raise RuntimeError("kernel launch failed\nsecond line")

    def wrong_shape(x, op):
        return ref.fused(x, op)[:, :-1]

    def wrong_dtype(x, op):
        return ref.fused(x, op).float()

    report = check(backend("raises", raises), backend("shape", wrong_shape), backend("dtype", wrong_dtype),
                   backend("fused", fused), dtypes="bf16", limits="7")
    verdicts = {(r.backend, r.verdict) for r in report.results}
    assert verdicts == {("raises", ERROR), ("shape", ERROR), ("dtype", ERROR), ("fused", PASS)}
    reasons = {r.backend: r.reasons[0] for r in report.results if r.reasons}
    assert reasons["raises"] == "backend raised RuntimeError: kernel launch failed"
    assert "shape (32, 255)" in reasons["shape"] or "shape (5, 410)" in reasons["shape"]
    assert "dtype fp32" in reasons["dtype"]
    assert report.exit_code == 1


def test_nan_output_fails():
    def nan_out(x, op):
        y = ref.fused(x, op)
        y[0, 0] = math.nan
        return y

    report = check(backend("nan", nan_out), dtypes="bf16", limits="7")
    assert all(r.verdict == FAIL and "NaN" in r.reasons[0] for r in report.results)


def test_inputs_that_miss_the_clamp_are_inconclusive():
    report = check(backend("fused", fused), dtypes="bf16", limits="7", scale=0.5)
    assert {r.verdict for r in report.results} == {INCONCLUSIVE}
    assert report.exit_code == 1


def test_fp32_is_judged_against_the_fp32_arithmetic_floor():
    report = check(backend("fused", fused), backend("no-clamp", ignores_clamp), dtypes="fp32", limits="7")
    by = {r.backend: r for r in report.results}
    assert by["fused"].verdict == PASS and by["fused"].metrics["floor"] > 0
    assert by["no-clamp"].verdict == FAIL


def test_empty_token_count_only_checks_the_shape():
    report = check(backend("fused", fused), dtypes="bf16", limits="7", shapes=["0x64"])
    assert report.results[0].verdict == PASS


def test_max_floor_ratio_override_applies():
    report = check(backend("eager", ref.eager), dtypes="bf16", limits="7", max_floor_ratio=1.05)
    assert {r.verdict for r in report.results} == {FAIL}


def test_same_seed_gives_identical_json_numbers():
    a = check(backend("eager", ref.eager), dtypes="bf16,fp32", limits="7", seed=3)
    b = check(backend("eager", ref.eager), dtypes="bf16,fp32", limits="7", seed=3)
    strip = lambda rep: [dict(r.to_dict(), seconds=0) for r in rep.results]
    assert json.dumps(strip(a)) == json.dumps(strip(b))


def test_column_slice_backend_that_assumes_contiguity_fails():
    def assumes_contiguous(x, op):
        # reads the underlying storage as if x were contiguous from its data pointer
        flat = torch.as_strided(x, (x.shape[0], x.shape[1]), (x.shape[1], 1))
        return ref.fused(flat, op)

    report = check(backend("contig", assumes_contiguous), dtypes="bf16", limits="7", input_view="column-slice")
    assert {r.verdict for r in report.results} == {FAIL}


def test_tiny_cases_are_inconclusive_unless_the_error_is_glaring():
    report = check(backend("eager", ref.eager), backend("no-clamp", ignores_clamp), dtypes="bf16", limits="7",
                   shapes=["3x17"])
    by = {r.backend: r for r in report.results}
    assert by["eager"].verdict == INCONCLUSIVE and "only 51 outputs" in by["eager"].reasons[0]
    assert by["no-clamp"].verdict == FAIL
