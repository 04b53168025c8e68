import pytest
import torch

from swiglu_check.errors import InputError
from swiglu_check.inputs import InputSpec, gated_input, gaussian_scale_for, resolve_scale


def make(seed=0, limit=7.0, spec=InputSpec(), dtype=torch.bfloat16, shape=(512, 512)):
    return gated_input(*shape, dtype=dtype, limit=limit, spec=spec, seed=seed)


def test_same_seed_is_bit_identical_and_other_seed_differs():
    a, b, c = make(0), make(0), make(1)
    assert torch.equal(a.view(torch.int16), b.view(torch.int16))
    assert not torch.equal(a, c)


def test_clamp_fraction_sets_the_share_of_gates_above_the_limit():
    for fraction in (0.1, 0.3):
        x = make(spec=InputSpec(clamp_fraction=fraction), dtype=torch.float32)
        gate = x[:, :512]
        assert (gate > 7.0).float().mean().item() == pytest.approx(fraction, abs=0.01)


def test_scale_rules():
    assert resolve_scale(InputSpec(), None) == 1.0
    assert resolve_scale(InputSpec(scale=3.0), 7.0) == 3.0
    # vLLM's randn * 2L puts about 31% of gates above L
    assert gaussian_scale_for(7.0, 0.3085) == pytest.approx(14.0, rel=1e-3)


@pytest.mark.parametrize("bad", [dict(clamp_fraction=0.0), dict(clamp_fraction=0.7), dict(scale=-1.0),
                                 dict(scale=float("nan")), dict(view="diagonal")])
def test_bad_input_specs(bad):
    with pytest.raises(InputError):
        InputSpec(**bad)


def test_column_slice_has_the_same_values_misaligned_and_strided():
    plain = make(shape=(8, 40))
    sliced = make(shape=(8, 40), spec=InputSpec(view="column-slice"))
    assert torch.equal(plain, sliced)
    assert not sliced.is_contiguous()
    assert sliced.stride(0) == 82
    assert sliced.data_ptr() % 16 != 0
