import pytest
import torch

from swiglu_check.testing import assert_matches_reference


def fused_silu(x, *, limit):
    d = x.shape[-1] // 2
    g, u = x[:, :d].float(), x[:, d:].float()
    if limit is not None:
        g, u = g.clamp(max=limit), u.clamp(-limit, limit)
    return (g * torch.sigmoid(g) * u).to(x.dtype)


def test_a_matching_function_passes():
    report = assert_matches_reference(fused_silu, dtypes="bf16,fp16", limits=[7, None])
    assert len(report.results) == 8


def test_the_failure_message_is_the_table_of_failing_cases():
    def forgets_clamp(x, *, limit):
        return fused_silu(x, limit=None)

    with pytest.raises(AssertionError) as info:
        assert_matches_reference(forgets_clamp, dtypes="bf16", limits=[7, None])
    message = str(info.value)
    assert "clamp not applied" in message and "FAIL" in message
    assert "Lnone" not in message  # passing cases are not in the table
