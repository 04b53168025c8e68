"""`diagnose` names the variant a backend computes: planted kernels, ties, broken backends, CLI."""

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.diagnose import Variant, _Ran, _separation, build_probes, diagnose, variants
from swiglu_check.ops import preset
from swiglu_check.references import gated as ref

SHAPE = (16, 256)
DEEPSEEK = preset("deepseek-v4")
GPT_OSS = preset("gpt-oss")
GEMMA = preset("gemma")
ERF_GELU = replace(DEEPSEEK, activation="gelu")


def fused_with(**changes):
    """A kernel built from the fused reference with some fields of the asked op changed."""
    return lambda x, op: ref.fused(x, replace(op, **changes))


def backend(call, name="planted", **kw) -> Backend:
    return Backend(name=name, kind="gated", call=call, **kw)


def run(call, op, dtype="bf16", check_supports=None):
    return diagnose(backend(call, check_supports=check_supports), op, dtype=dtype, shape=SHAPE)


# The planted kernels of the Done-when list: (asked op, kernel, the words diagnose must give).
PLANTED = {
    "unclamped": (DEEPSEEK, fused_with(limit=None), ["clamp not applied"]),
    "post-clamp": (DEEPSEEK, fused_with(clamp="post"),
                   ["post-activation clamp (min(act(gate), L)) instead of clamping the inputs"]),
    "erf-gelu-for-tanh": (GEMMA, fused_with(activation="gelu"), ["uses erf GELU where tanh was asked"]),
    "tanh-gelu-for-erf": (ERF_GELU, fused_with(activation="gelu_tanh"), ["uses tanh GELU where erf was asked"]),
    "interleaved-read-as-halves": (GPT_OSS, fused_with(layout="halves"), ["reads interleaved input as halves"]),
    "missing-beta": (GPT_OSS, fused_with(beta=0.0), ["beta (up + 1) missing"]),
}


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_kernel_is_named(name, dtype):
    asked, kernel, words = PLANTED[name]
    result = run(kernel, asked, dtype)
    assert result.differences == words, result.sentence
    assert not result.matches_asked and result.within_rounding and result.exit_code == 1
    assert result.sentence.startswith(f"matches {result.asked_name} except: {', '.join(words)};")
    # built from the fused recipe, it is reproduced bit for bit by that candidate
    assert (result.best.realization, result.best.distance) == ("fused", 0.0)
    assert not result.indistinguishable


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_extra_rounding_is_named_and_still_the_asked_op(dtype):
    result = run(ref.round_act, DEEPSEEK, dtype)
    assert result.differences == [] and result.matches_asked and result.exit_code == 0
    assert result.best.realization == "round-act" and result.best.distance == 0.0
    assert f"rounds the activation to {dtype} before the product" in result.sentence
    # measured against the exact result it is one extra rounding, not wrong math
    assert 1.1 < result.floor_ratio < 1.8


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_correct_kernel_matches(dtype):
    result = run(ref.fused, DEEPSEEK, dtype)
    assert result.matches_asked and result.within_rounding and result.exit_code == 0
    assert result.differences == [] and not result.indistinguishable
    assert result.sentence.startswith("matches deepseek-v4; computes in fp32")
    assert 0.9 < result.floor_ratio < 1.1
    # every other variant is far: the probes separate them all at this limit
    others = [c for c in result.candidates if c.op != DEEPSEEK]
    assert min(c.distance for c in others) > 10


def test_handwritten_fp32_kernel_with_interleave_bug():
    def kernel(x, op):  # gpt-oss math in fp32, but it splits the row in halves
        xf = x.float()
        d = xf.shape[-1] // 2
        gate, up = xf[:, :d].clamp(max=op.limit), xf[:, d:].clamp(-op.limit, op.limit)
        return (gate / (1 + torch.exp(-op.alpha * gate)) * (up + op.beta)).to(x.dtype)

    result = run(kernel, GPT_OSS)
    assert result.differences == ["reads interleaved input as halves"] and result.exit_code == 1
    assert result.sentence.startswith("matches gpt-oss except: reads interleaved input as halves;")


def test_handwritten_sigmoid_form_tanh_gelu_is_told_from_erf():
    def kernel(x, op):  # tanh GELU written as g * sigmoid(2 * sqrt(2/pi) * (g + 0.044715 g^3))
        xf = x.float()
        d = xf.shape[-1] // 2
        gate, up = xf[:, :d], xf[:, d:]
        return (gate * torch.sigmoid(1.5957691216057308 * (gate + 0.044715 * gate**3)) * up).to(x.dtype)

    asked = replace(GEMMA, activation="gelu")
    result = run(kernel, asked)
    assert result.differences == ["uses tanh GELU where erf was asked"]
    exact_asked = next(c for c in result.candidates if c.op == asked and c.realization == "exact")
    # on Gaussian inputs erf and tanh GELU look alike; the gelu-tail probe tells them apart
    assert exact_asked.per_probe["gaussian"] < 1.5
    assert exact_asked.per_probe["gelu-tail"] > 10
    assert run(kernel, GEMMA).exit_code == 0


@pytest.mark.parametrize("dtype,gaussian_gap,tail_gap", [("bf16", 0.5, (10, 100)), ("fp16", 2.0, (100, 1000))])
def test_gelu_tail_probe_separates_erf_from_tanh(dtype, gaussian_gap, tail_gap):
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    probes = {p.name: p for p in build_probes(GEMMA, torch_dtype, *SHAPE, seed=0, device="cpu")}
    erf, tanh = Variant(ERF_GELU.with_limit(None)), Variant(GEMMA)

    def gap(name):
        return _separation(erf, tanh, [_Ran(probes[name], probes[name].x)], torch_dtype)[0]

    # on unit Gaussians the two differ by a fraction of a bf16 rounding (about one fp16
    # rounding); on the tail probe by tens (hundreds) of roundings
    assert gap("gaussian") < gaussian_gap
    assert tail_gap[0] < gap("gelu-tail") < tail_gap[1]


def only_limit(limit):
    return lambda op: (op.limit == limit, f"compiled for L={limit:g} only")


def test_pre_and_post_clamp_indistinguishable_without_a_probe_limit():
    op = DEEPSEEK.with_limit(7.0)
    result = run(fused_with(clamp="post"), op, check_supports=only_limit(7.0))
    assert [p.ran for p in result.probes] == [True, True, False]
    assert "compiled for L=7 only" in result.probes[2].skipped
    # the evidence cannot separate them: say so, keep the asked op, never pick at random
    assert result.matches_asked and result.exit_code == 0
    [tie] = result.indistinguishable
    assert tie.startswith("pre and post clamp are indistinguishable at bf16, L=7: they differ by at most 0.")
    assert tie in result.sentence


def test_pre_and_post_clamp_separate_in_fp16_at_l7():
    result = run(fused_with(clamp="post"), DEEPSEEK.with_limit(7.0), "fp16", check_supports=only_limit(7.0))
    assert result.differences == ["post-activation clamp (min(act(gate), L)) instead of clamping the inputs"]
    assert result.exit_code == 1 and not result.indistinguishable


def test_unclamped_asked_op_has_no_clamp_candidates():
    result = run(fused_with(beta=1.0), preset("llama"))
    assert [p.name for p in result.probes] == ["gaussian", "gelu-tail"]
    assert result.differences == ["adds beta to up (up + 1) where none was asked"]
    assert all(c.op.limit is None for c in result.candidates)


def test_family_covers_every_named_variant():
    ops = {v.op for v in variants(GPT_OSS)}
    for change in (dict(limit=None), dict(clamp="post"), dict(activation="gelu"), dict(activation="gelu_tanh"),
                   dict(layout="halves"), dict(beta=0.0), dict(alpha=1.0), dict(alpha=1.0, beta=0.0)):
        assert replace(GPT_OSS, **change) in ops


def test_double_bug_with_own_rounding():
    result = run(lambda x, op: ref.round_act(x, replace(op, alpha=1.0, beta=0.0)), GPT_OSS)
    assert result.differences == ["alpha 1.702 missing", "beta (up + 1) missing"]
    assert result.best.realization == "exact" and result.within_rounding  # no recipe of a 2-field change


def test_wrong_math_matches_nothing():
    result = run(lambda x, op: torch.randn(x.shape[0], x.shape[1] // 2).to(x.dtype), DEEPSEEK)
    assert not result.within_rounding and result.exit_code == 1
    assert result.sentence.startswith("matches no candidate within rounding: the closest")


def test_nan_output_matches_nothing():
    def kernel(x, op):
        y = ref.fused(x, op)
        y[0, 3] = float("nan")
        return y

    result = run(kernel, DEEPSEEK)
    assert result.exit_code == 1 and "NaN/Inf" in result.sentence
    assert all(p.nonfinite == 1 for p in result.probes)


def test_backend_that_raises_gives_a_message():
    result = run(lambda x, op: 1 / 0, DEEPSEEK)
    assert result.exit_code == 1 and result.candidates == []
    assert result.sentence == ("could not diagnose planted: backend raised ZeroDivisionError: division by zero"
                               " on the clamp probe (L=10)")
    assert "Traceback" in result.details


def test_backend_that_refuses_the_probe_limit_still_gets_a_diagnosis():
    def kernel(x, op):
        if op.limit != 10.0:
            raise ValueError("limit is baked in")
        return ref.fused(x, op)

    result = run(kernel, DEEPSEEK)
    assert result.exit_code == 0 and not result.probes[2].ran
    assert any("probe-limit probe skipped: backend raised ValueError: limit is baked in" in n for n in result.notes)
    assert "pre and post clamp are indistinguishable at bf16, L=10" in result.sentence


def test_backend_with_wrong_shape_gives_a_message():
    result = run(lambda x, op: x, DEEPSEEK)
    assert result.exit_code == 1
    assert result.error == "backend returned shape (16, 512), expected (16, 256) (on the clamp probe)"


# ----------------------------------------------------------------------------- CLI

SMALL = ["--shape", "16x256", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_exit_0_for_a_correct_backend():
    result = invoke("diagnose", "--backend", "torch-eager", *SMALL)
    assert result.exit_code == 0, result.output
    assert "torch-eager: matches deepseek-v4; rounds the activation to bf16 before the product" in result.output
    assert "probe-limit" in result.output and "candidates, closest first" in result.output


def test_cli_exit_1_names_the_variant(registered):
    registered(backend(fused_with(limit=None), name="planted-unclamped"))
    result = invoke("diagnose", "--backend", "planted-unclamped", "--op", "gpt-oss", "--dtype", "fp16",
                    "--format", "json", *SMALL)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["schema"] == "swiglu-check/diagnose" and data["exit_code"] == 1
    assert data["differences"] == ["clamp not applied"]
    assert data["sentence"].startswith("matches gpt-oss except: clamp not applied;")
    assert data["asked"]["limit"] == 7.0 and data["dtype"] == "fp16"


def test_cli_overrides_and_limit(registered):
    registered(backend(fused_with(activation="gelu_tanh"), name="planted-tanh"))
    result = invoke("diagnose", "--backend", "planted-tanh", "--activation", "gelu", "--limit", "5", *SMALL)
    assert result.exit_code == 1
    assert ("matches deepseek-v4 with activation=gelu, L=5 except: uses tanh GELU where erf was asked;"
            in result.output)


def test_cli_backend_that_raises_is_one_clear_line(registered):
    registered(backend(lambda x, op: 1 / 0, name="planted-raises"))
    result = invoke("diagnose", "--backend", "planted-raises", *SMALL)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not diagnose planted-raises: backend raised ZeroDivisionError" in result.output


@pytest.mark.parametrize("args,message", [
    (["--backend", "nope"], "unknown backend"),
    (["--backend", "torch-eager", "--limit", "7,10"], "diagnose takes one limit"),
    (["--backend", "torch-eager", "--limit", "0"], "limit must be > 0"),
    (["--backend", "torch-eager", "--shape", "0x8"], "non-empty shape"),
    (["--backend", "torch-eager", "--shape", "axb"], "malformed shape"),
    (["--backend", "torch-eager", "--dtype", "fp8"], "unknown dtype"),
    (["--backend", "torch-eager", "--max-floor-ratio", "0.5"], "max floor ratio"),
    (["--backend", "torch-eager", "--device", "tpu"], "device"),
    ([], "Missing option '--backend'"),
])
def test_cli_bad_input_is_exit_2_one_line(args, message):
    result = CliRunner().invoke(cli, ["diagnose", *args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_backend_of_another_kind_is_exit_2(registered):
    registered(Backend(name="planted-fp8", kind="gated-fp8", call=lambda x, op: x))
    result = CliRunner().invoke(cli, ["diagnose", "--backend", "planted-fp8", *SMALL], catch_exceptions=False)
    assert result.exit_code == 2 and "kind gated" in result.output
