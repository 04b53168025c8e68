"""Properties of the FP4 reference formats (references/fp4.py)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swiglu_check.references import fp4

FINITE_F32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
GRID = torch.tensor(fp4.E2M1_VALUES, dtype=torch.float64)


def nearest_even_code(value: float) -> int:
    """Brute force: the code whose value is nearest, ties to the even code; beyond 6 saturate."""
    negative = math.copysign(1.0, value) < 0
    if abs(value) >= 6.0:
        return 15 if negative else 7
    best = None
    for code, candidate in enumerate(fp4.E2M1_VALUES):
        if (candidate < 0 or (candidate == 0 and code == 8)) != negative:
            continue  # keep the sign (values that round to zero keep theirs)
        distance = abs(value - candidate)
        key = (distance, code & 1)  # nearest first, then the even mantissa
        if best is None or key < best[0]:
            best = (key, code)
    return best[1]


@settings(max_examples=400, deadline=None)
@given(st.lists(FINITE_F32, min_size=1, max_size=64))
def test_encode_is_nearest_with_ties_to_even(values: list[float]) -> None:
    t = torch.tensor(values, dtype=torch.float32)
    codes = fp4.e2m1_encode(t).tolist()
    assert codes == [nearest_even_code(v) for v in values]
    decoded = fp4.e2m1_decode(fp4.e2m1_encode(t), torch.float64)
    assert torch.equal(decoded, GRID[torch.tensor([nearest_even_code(v) for v in values])])


def test_ties_and_saturation_explicitly() -> None:
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -5.0, 6.5, 1e30, -7.0])
    expected = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -0.0, -4.0, 6.0, 6.0, -6.0]
    assert fp4.e2m1_decode(fp4.e2m1_encode(ties)).tolist() == expected
    assert fp4.e2m1_encode(torch.tensor([-0.0, -0.1])).tolist() == [8, 8]  # sign kept
    with pytest.raises(ValueError, match="NaN"):
        fp4.e2m1_encode(torch.tensor([float("nan")]))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip(rows: int, half: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 16, (rows, 2 * half), generator=g, dtype=torch.uint8)
    packed = fp4.pack_fp4(codes)
    assert packed.shape == (rows, half)
    assert torch.equal(fp4.unpack_fp4(packed), codes)
    raw = torch.randint(0, 256, (rows, half), generator=g, dtype=torch.uint8)
    assert torch.equal(fp4.pack_fp4(fp4.unpack_fp4(raw)), raw)


def test_even_element_goes_in_the_low_nibble() -> None:
    codes = torch.tensor([[0x1, 0x2, 0xF, 0x7]], dtype=torch.uint8)
    assert fp4.pack_fp4(codes).tolist() == [[0x21, 0x7F]]


def test_packing_matches_torch_float4_e2m1fn_x2() -> None:
    """PyTorch's float4_e2m1fn_x2 packs element 2i in the low nibble; its own unpacker
    (in the ONNX exporter) and, where importable, its bf16 -> float4 converter agree."""
    if not hasattr(torch, "float4_e2m1fn_x2"):
        pytest.skip("this torch has no float4_e2m1fn_x2")
    g = torch.Generator().manual_seed(1)
    values = (torch.randn(8, 64, generator=g) * 3).to(torch.bfloat16)
    packed = fp4.pack_fp4(fp4.e2m1_encode(values.float()))
    as_torch = packed.view(torch.float4_e2m1fn_x2)
    checked = 0
    try:
        from torch.onnx._internal.exporter._type_casting import unpack_float4x2_as_uint8
    except Exception:  # private helper: absent in some torch builds
        unpack_float4x2_as_uint8 = None
    if unpack_float4x2_as_uint8 is not None:
        unpacked = torch.from_numpy(unpack_float4x2_as_uint8(as_torch))
        assert torch.equal(unpacked, fp4.unpack_fp4(packed))
        checked += 1
    try:
        from torch.testing._internal.common_quantized import _bfloat16_to_float4_e2m1fn_x2
    except Exception:  # needs test-only dependencies (expecttest)
        _bfloat16_to_float4_e2m1fn_x2 = None
    if _bfloat16_to_float4_e2m1fn_x2 is not None:
        theirs = _bfloat16_to_float4_e2m1fn_x2(values).view(torch.uint8)
        assert torch.equal(theirs, packed)
        checked += 1
    if not checked:
        pytest.skip("no torch float4 helper importable here")


def test_scale_decoders_match_torch_dtypes() -> None:
    all_bytes = torch.arange(256, dtype=torch.uint8)
    e4m3 = fp4.e4m3_decode(all_bytes)
    assert torch.equal(e4m3.nan_to_num(-1.0), all_bytes.view(torch.float8_e4m3fn).double().nan_to_num(-1.0))
    e8m0 = fp4.e8m0_decode(all_bytes)
    assert torch.isnan(e8m0[255]) and not torch.isnan(e8m0[:255]).any()
    assert e8m0[127] == 1.0 and e8m0[0] == 2.0**-127 and e8m0[254] == 2.0**127
    if hasattr(torch, "float8_e8m0fnu"):
        theirs = all_bytes.view(torch.float8_e8m0fnu).double()
        assert torch.equal(e8m0.nan_to_num(-1.0), theirs.nan_to_num(-1.0))


def half_gap(u: torch.Tensor) -> torch.Tensor:
    """Half the E2M1 grid spacing around |u| (the worst rounding error in code units)."""
    return torch.where(u < 2, 0.25, torch.where(u < 4, 0.5, 1.0)).to(torch.float64)


weights = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31 - 1),
                    st.sampled_from([1e-3, 1.0, 1e3]), st.booleans())


def random_weights(rows: int, blocks: int, block: int, seed: int, scale: float, spread: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, blocks * block, generator=g) * scale
    if spread:  # blocks of very different magnitudes (exercises small e4m3 / e8m0 scales)
        w = w * torch.logspace(-6, 0, blocks * block).reshape(1, -1)
    return w


@settings(max_examples=60, deadline=None)
@given(weights)
def test_mxfp4_error_within_bound(args: tuple) -> None:
    rows, blocks, seed, scale, spread = args
    w = random_weights(rows, blocks, 32, seed, scale, spread)
    q = fp4.quantize(w, "mxfp4")
    deq = fp4.dequantize(q)
    s = fp4.block_scales(q).repeat_interleave(32, dim=-1)
    w64 = w.double()
    # the scale is the smallest power of two with block_amax / scale <= 6
    amax = w64.reshape(rows, blocks, 32).abs().amax(-1)
    bs = fp4.block_scales(q)
    assert bool((amax <= 6 * bs).all()) and bool(((amax > 3 * bs) | (amax == 0)).all())
    err = (deq - w64).abs()
    assert bool((err <= s * half_gap(w64.abs() / s) * (1 + 1e-12)).all())


@settings(max_examples=60, deadline=None)
@given(weights)
def test_nvfp4_error_within_bound(args: tuple) -> None:
    rows, blocks, seed, scale, spread = args
    w = random_weights(rows, blocks, 16, seed, scale, spread)
    q = fp4.quantize(w, "nvfp4")
    w64 = w.double()
    global_scale = float(q.global_scale)
    assert global_scale == pytest.approx(w64.abs().max().item() / (6 * 448), rel=1e-6)
    # block scales are e4m3(block_amax / (6 * global)), rounded to nearest
    amax = w64.reshape(rows, blocks, 16).abs().amax(-1)
    wanted = (amax / (6 * global_scale)).clamp(max=448).to(torch.float8_e4m3fn).double()
    assert torch.equal(fp4.e4m3_decode(q.scales), wanted)
    # every element is the nearest grid point of w / s_eff (saturating at 6)
    s = fp4.block_scales(q).repeat_interleave(16, dim=-1)
    u = torch.where(s > 0, w64.abs() / torch.where(s > 0, s, 1.0), 0.0)
    bound = torch.where(u > 6, u - 6, half_gap(u)) * s
    err = (fp4.dequantize(q) - w64).abs()
    assert bool((err <= bound + 1e-9 * s + (s == 0) * w64.abs()).all())


@pytest.mark.parametrize("fmt", fp4.FORMATS)
def test_gaussian_quantization_error_is_about_ten_percent(fmt: str) -> None:
    w = torch.randn(256, 512, generator=torch.Generator().manual_seed(3))
    q = fp4.quantize(w, fmt)
    rel = (fp4.dequantize(q) - w.double()).norm() / w.double().norm()
    assert 0.05 < float(rel) < 0.15


def test_dequantize_is_exact_and_batched() -> None:
    w = torch.randn(3, 8, 64, generator=torch.Generator().manual_seed(4))
    q = fp4.quantize(w, "nvfp4")
    assert q.packed.shape == (3, 8, 32) and q.scales.shape == (3, 8, 4) and q.global_scale.shape == (3,)
    for e in range(3):
        one = fp4.quantize(w[e], "nvfp4")
        assert torch.equal(q[e].packed, one.packed) and torch.equal(q[e].scales, one.scales)
        assert torch.equal(fp4.dequantize(q)[e], fp4.dequantize(one))
    # float64 dequantization is exact: rounding it to fp32 and back changes nothing for
    # values with few significant bits, and e2m1 * e4m3 needs at most 6
    scaled = fp4.dequantize(q) / q.global_scale.double()[:, None, None]
    assert torch.equal(scaled.to(torch.bfloat16).double(), scaled)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of the block size"):
        fp4.quantize(torch.zeros(2, 24), "mxfp4")
    with pytest.raises(ValueError, match="finite"):
        fp4.quantize(torch.tensor([[float("inf")] * 16]), "nvfp4")
    with pytest.raises(ValueError, match="unknown FP4 format"):
        fp4.quantize(torch.zeros(2, 32), "int4")
    zeros = fp4.quantize(torch.zeros(2, 32), "mxfp4")
    assert torch.equal(fp4.dequantize(zeros), torch.zeros(2, 32, dtype=torch.float64))
