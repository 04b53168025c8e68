"""The references against values computed by hand (Python's math module, not torch)."""

import math

import pytest
import torch

from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref


def silu(g: float, alpha: float = 1.0) -> float:
    return g / (1.0 + math.exp(-alpha * g))


def gelu(g: float) -> float:
    return 0.5 * g * (1.0 + math.erf(g / math.sqrt(2.0)))


def gelu_tanh(g: float) -> float:
    return 0.5 * g * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g**3)))


def one_row(gate: list[float], up: list[float], layout: str = "halves") -> torch.Tensor:
    if layout == "halves":
        return torch.tensor([gate + up], dtype=torch.float64)
    return torch.tensor([[v for pair in zip(gate, up) for v in pair]], dtype=torch.float64)


L = 7.0
BELOW = math.nextafter(L, 0.0)
ABOVE = math.nextafter(L, 100.0)


@pytest.mark.parametrize("layout", ["halves", "interleaved"])
def test_clamp_at_just_below_and_just_above_the_limit(layout):
    gate = [L, BELOW, ABOVE, 20.0, -20.0]
    up = [L, -ABOVE, ABOVE, -BELOW, -50.0]
    out = ref.exact(one_row(gate, up, layout), OpSpec(limit=L, layout=layout))[0].tolist()
    # gate clamps on the upper side only; up clamps on both sides
    expected = [silu(L) * L, silu(BELOW) * -L, silu(L) * L, silu(L) * -BELOW, silu(-20.0) * -L]
    assert out == pytest.approx(expected, rel=1e-15, abs=0)


def test_without_clamp_values_pass_through():
    gate, up = [20.0, -3.0], [50.0, 0.5]
    out = ref.exact(one_row(gate, up), OpSpec(limit=None))[0].tolist()
    assert out == pytest.approx([silu(20.0) * 50.0, silu(-3.0) * 0.5], rel=1e-15)


def test_apply_clamp_false_is_the_unclamped_formula():
    x = one_row([20.0], [50.0])
    assert ref.exact(x, OpSpec(limit=L), apply_clamp=False).item() == pytest.approx(silu(20.0) * 50.0, rel=1e-15)


def test_gpt_oss_alpha_and_beta():
    op = OpSpec("silu", 1.702, 1.0, 7.0, "interleaved")
    out = ref.exact(one_row([1.5, 9.0], [-2.0, -8.0], "interleaved"), op)[0].tolist()
    assert out == pytest.approx([silu(1.5, 1.702) * (-2.0 + 1.0), silu(7.0, 1.702) * (-7.0 + 1.0)], rel=1e-15)


@pytest.mark.parametrize("name,fn", [("gelu", gelu), ("gelu_tanh", gelu_tanh)])
def test_gelu_variants(name, fn):
    gate = [-3.0, -0.5, 0.7, 2.5, 12.0]
    out = ref.exact(one_row(gate, [1.0] * 5), OpSpec(name, limit=10.0))[0].tolist()
    assert out == pytest.approx([fn(min(g, 10.0)) for g in gate], rel=1e-14)


def test_gelu_and_gelu_tanh_differ_where_expected():
    g = torch.tensor([[-1.5, 1.0]], dtype=torch.float64)
    a = ref.exact(g, OpSpec("gelu")).item()
    b = ref.exact(g, OpSpec("gelu_tanh")).item()
    assert abs(a - b) == pytest.approx(abs(gelu(-1.5) - gelu_tanh(-1.5)), rel=1e-12)
    assert 1e-5 < abs(a - b) < 1e-3


def test_post_clamp_clamps_the_activation_not_the_gate():
    op = OpSpec(limit=5.0, clamp="post")
    out = ref.exact(one_row([4.0, 9.0], [2.0, 9.0]), op)[0].tolist()
    assert out == pytest.approx([silu(4.0) * 2.0, min(silu(9.0), 5.0) * 5.0], rel=1e-15)


def test_nan_propagates_through_the_clamp():
    out = ref.exact(one_row([math.nan, 1.0], [1.0, math.nan]), OpSpec(limit=L))[0]
    assert torch.isnan(out).all()


def test_odd_width_is_rejected():
    with pytest.raises(ValueError, match="even"):
        ref.split_gate_up(torch.zeros(2, 5), "halves")


def test_recipes_round_as_documented():
    torch.manual_seed(0)
    x = (torch.randn(64, 256) * 8).to(torch.bfloat16)
    op = OpSpec(limit=L)
    exact = ref.exact(x, op)
    # fused: fp32 math then one rounding -> equals the exact result rounded, almost always
    fused = ref.fused(x, op)
    assert (fused == exact.to(torch.bfloat16)).float().mean() > 0.99
    # round-act: the activation is rounded to bf16 before the product
    gate, up = ref.split_gate_up(x.float(), "halves")
    act = torch.nn.functional.silu(gate.clamp(max=L)).to(torch.bfloat16).float()
    assert torch.equal(ref.round_act(x, op), (act * up.clamp(-L, L)).to(torch.bfloat16))
    # eager: every op in bf16
    g16, u16 = ref.split_gate_up(x, "halves")
    assert torch.equal(ref.eager(x, op), torch.nn.functional.silu(g16.clamp(max=L)) * u16.clamp(-L, L))
