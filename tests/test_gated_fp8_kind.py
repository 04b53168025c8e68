"""The `gated-fp8` check kind and the exact FP8 quantizer, with torch-made outputs.

The kind must pass the exact quantizer, and must not pass a quantization of the wrong
activation, a wrong scale layout or a broken output; these backends are plain torch
functions built from the references (no Triton needed).
"""

from __future__ import annotations

import math

import pytest
import torch

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.errors import InputError
from swiglu_check.kinds import get_kind
from swiglu_check.quant import Fp8Spec, build_fp8_specs, parse_scale_layouts
from swiglu_check.references import fp8 as fp8_ref
from swiglu_check.references import gated as ref
from swiglu_check.results import ERROR, FAIL, INCONCLUSIVE, PASS, SKIP

SHAPES = [(8, 256)]


def _layout(scales: torch.Tensor, spec: Fp8Spec) -> torch.Tensor:
    return scales.t().contiguous().t() if spec.column_major else scales.contiguous()


def _exact_quantizer(x, op, spec):
    q, scales = fp8_ref.quantize(ref.exact(x, op), spec)
    return q, _layout(scales, spec)


def _backend(name, call):
    return Backend(name=name, kind="gated-fp8", call=call, source="test")


def _run(call, **settings):
    settings.setdefault("shapes", SHAPES)
    settings.setdefault("dtypes", ["bf16"])
    return api.check(_backend("fake-fp8", call), device="cpu", **settings)


def test_e4m3_grid_rounding_is_exact_on_grid_and_ties() -> None:
    grid = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).double()
    grid = grid[torch.isfinite(grid)].unique()
    assert torch.equal(fp8_ref.round_to_e4m3_grid(grid), grid)
    mids = (grid[1:] + grid[:-1]) / 2
    expected = mids.float().to(torch.float8_e4m3fn).double()  # midpoints are exact in fp32
    assert torch.equal(fp8_ref.round_to_e4m3_grid(mids), expected)


def test_ue8m0_scales_are_powers_of_two_rounded_up() -> None:
    y = torch.randn(5, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 7
    plain = fp8_ref.group_scales(y, Fp8Spec())
    pow2 = fp8_ref.group_scales(y, Fp8Spec(ue8m0=True))
    mantissa, _ = torch.frexp(pow2)
    assert torch.all(mantissa == 0.5)
    assert torch.all(pow2 >= plain) and torch.all(pow2 < 2 * plain.double())
    exact_pow = fp8_ref.group_scales(torch.full((1, 128), 448.0 * 2.0**-3, dtype=torch.float64), Fp8Spec(ue8m0=True))
    assert exact_pow.item() == 2.0**-3  # a power of two stays


def test_exact_quantizer_passes_at_floor_ratio_one() -> None:
    report = _run(_exact_quantizer, op="gpt-oss", limits=[7.0], ue8m0=True)
    assert [r.verdict for r in report.results] == [PASS, PASS]
    for r in report.results:
        assert r.metrics["floor_ratio"] == pytest.approx(1.0)
        assert r.metrics["scale_mismatch"] == 0.0 and r.metrics["codes_far"] == 0.0
        assert 0.005 < r.metrics["floor"] < 0.05  # e4m3: 3 mantissa bits


def test_quantizing_the_unclamped_activation_fails() -> None:
    def no_clamp(x, op, spec):
        q, scales = fp8_ref.quantize(ref.exact(x, op, apply_clamp=False), spec)
        return q, _layout(scales, spec)

    report = _run(no_clamp, limits=[10.0])
    assert [r.verdict for r in report.results] == [FAIL, FAIL]
    assert all(any("clamp not applied" in reason for reason in r.reasons) for r in report.results)


def test_exact_gelu_for_tanh_gelu_is_invisible_under_fp8_but_wrong_math_is_not() -> None:
    """The fp8 floor (~3%) hides a 1e-4 activation error; a sign error cannot hide."""
    def exact_gelu(x, op, spec):
        from dataclasses import replace

        q, scales = fp8_ref.quantize(ref.exact(x, replace(op, activation="gelu")), spec)
        return q, _layout(scales, spec)

    def negated(x, op, spec):
        q, scales = fp8_ref.quantize(-ref.exact(x, op), spec)
        return q, _layout(scales, spec)

    assert {r.verdict for r in _run(exact_gelu, op="gemma").results} == {PASS}
    assert {r.verdict for r in _run(negated, op="gemma").results} == {FAIL}


def test_doubled_scale_convention_passes_but_is_warned_about() -> None:
    """scale = absmax / 224 dequantizes just as well, but codes sit a binade lower."""
    def wrong_max(x, op, spec):
        y = ref.exact(x, op)
        scales = fp8_ref.group_scales(y, spec) * 2  # absmax / 224: q stays within +-224
        q = (y / scales.double().repeat_interleave(spec.group_size, 1)).clamp(-448, 448)
        q = fp8_ref.round_to_e4m3_grid(q).float().to(torch.float8_e4m3fn)
        return q, _layout(scales, spec)

    report = _run(wrong_max, scale_layouts=["row"])
    (result,) = report.results
    assert result.verdict == PASS  # q * scale is as accurate: judged in dequantized space
    assert result.metrics["scale_mismatch"] == 1.0 and result.metrics["codes_far"] > 0.5
    assert any("scale convention" in w for w in result.warnings)


def test_wrong_scale_layout_is_an_error() -> None:
    def always_row_major(x, op, spec):
        q, scales = fp8_ref.quantize(ref.exact(x, op), spec)
        return q, scales.contiguous()

    report = _run(always_row_major, scale_layouts=["col"])
    (result,) = report.results
    assert result.verdict == ERROR and "column-major" in result.reasons[0]


@pytest.mark.parametrize("output, fragment", [
    (lambda q, s: q, "pair"),
    (lambda q, s: (q.float(), s), "dtype"),
    (lambda q, s: (q, s[:, :1]), "shape"),
])
def test_malformed_outputs_are_errors(output, fragment) -> None:
    def call(x, op, spec):
        return output(*_exact_quantizer(x, op, spec))

    report = _run(call, scale_layouts=["row"])
    assert report.results[0].verdict == ERROR and fragment in report.results[0].reasons[0]


def test_width_not_a_multiple_of_the_group_is_skipped() -> None:
    report = _run(_exact_quantizer, shapes=[(4, 100), (16, 128)], group_size=64, scale_layouts=["row"])
    assert [r.verdict for r in report.results] == [SKIP, PASS]
    assert "multiple of the group size 64" in report.results[0].reasons[0]


def test_clamp_never_reached_is_inconclusive() -> None:
    report = _run(_exact_quantizer, limits=[10.0], scale=0.5, scale_layouts=["row"])
    assert report.results[0].verdict == INCONCLUSIVE


def test_case_ids_round_trip() -> None:
    kind = get_kind("gated-fp8")
    settings = api.build_settings(limits=["7"], dtypes=["fp16"], shapes=["3x64"], group_size=32, ue8m0=True,
                                  scale_layouts=["both"], scale=2.5)
    for case in kind.cases(_backend("b", None), settings):
        assert kind.parse_case_id("b", case.case_id.split("/", 1)[1]) == case


def test_spec_parsing_and_validation() -> None:
    assert parse_scale_layouts(["row,col"]) == ["row", "col"] == parse_scale_layouts(["both"])
    assert [s.label for s in build_fp8_specs(64, True, ["col"])] == ["g64+ue8m0+col"]
    assert Fp8Spec.from_label("g128+ue8m0+col") == Fp8Spec(ue8m0=True, column_major=True)
    with pytest.raises(InputError):
        parse_scale_layouts(["diagonal"])
    with pytest.raises(InputError):
        Fp8Spec(group_size=0)


def test_dequantized_error_of_the_exact_quantizer_is_the_e4m3_step() -> None:
    y = torch.randn(64, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    q, scales = fp8_ref.quantize(y, Fp8Spec())
    rel = float((fp8_ref.dequantize(q, scales, 128) - y).norm() / y.norm())
    assert 2**-7 < rel < 2**-4 and math.isfinite(rel)  # a few % for 3 mantissa bits
