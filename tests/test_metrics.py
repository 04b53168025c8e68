import math

import pytest
import torch

from swiglu_check.dtypes import ulp_distance
from swiglu_check.metrics import ErrorAccumulator, UlpHistogram, ratio, rel
from swiglu_check.ops import OpSpec
from swiglu_check.kinds.gated import measure


def test_ulp_distance_counts_representable_steps():
    a = torch.tensor([1.0, 1.0, 0.0, -0.0, 1.0], dtype=torch.bfloat16)
    b = torch.tensor([1.0 + 2**-7, 1.0 + 2 * 2**-7, -0.0, 0.0, 1.0], dtype=torch.bfloat16)
    assert ulp_distance(a, b).tolist() == [1, 2, 0, 0, 0]
    tiny = torch.tensor([2**-133], dtype=torch.bfloat16)  # smallest bf16 subnormal
    assert ulp_distance(tiny, -tiny).tolist() == [2]
    f32 = torch.tensor([1.0], dtype=torch.float32)
    assert ulp_distance(f32, torch.nextafter(f32, torch.tensor([2.0]))).tolist() == [1]


def test_rel_l2_and_max_abs_by_hand():
    acc = ErrorAccumulator()
    exact = torch.tensor([3.0, 4.0], dtype=torch.float64)
    acc.update(torch.tensor([3.0, 5.0]), exact)
    assert acc.rel_l2 == pytest.approx(1.0 / 5.0)
    assert acc.max_abs == 1.0
    assert acc.worst.index == 1


def test_nan_and_inf_mismatches_are_counted_and_excluded():
    acc = ErrorAccumulator()
    exact = torch.tensor([1.0, math.nan, 2.0, math.inf], dtype=torch.float64)
    out = torch.tensor([math.nan, math.nan, 2.0, -math.inf])
    acc.update(out, exact)
    assert acc.nan_mismatch == 1
    assert acc.inf_mismatch == 1
    assert acc.count == 1 and acc.rel_l2 == 0.0


def test_histogram_quantiles():
    h = UlpHistogram()
    h.add(torch.tensor([0] * 98 + [3, 5000], dtype=torch.int64))
    assert h.maximum == 5000
    assert h.quantile(0.98) == 0
    assert h.quantile(0.99) == 3
    assert h.quantile(1.0) == 4096  # lower bound of the [4096, 8192) bucket


def test_ratio_conventions():
    assert ratio(0.0, 0.0) == 0.0 and ratio(1.0, 0.0) == math.inf and ratio(2.0, 4.0) == 0.5
    assert rel(0.0, 0.0) == 0.0 and rel(1.0, 0.0) == math.inf


def test_metrics_do_not_depend_on_the_chunk_size():
    torch.manual_seed(1)
    x = (torch.randn(37, 2 * 99) * 13).to(torch.bfloat16)
    op = OpSpec(limit=7.0)
    y = op and (torch.nn.functional.silu(x[:, :99].clamp(max=7.0)) * x[:, 99:].clamp(-7.0, 7.0))
    whole = measure(op, x, y, chunk_bytes=1 << 30)
    rows = measure(op, x, y, chunk_bytes=1)  # one row per chunk
    for key in ("rel_l2", "floor", "max_abs", "ulp_max", "gate_above", "missing_clamp_rel_l2"):
        assert rows[key] == pytest.approx(whole[key], rel=1e-12), key
