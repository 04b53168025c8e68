"""A pytest test of your own kernel, using swiglu-check's helper.

    cd examples && python -m pytest -q test_with_helper.py
"""

import pytest

from my_kernels.ops import swiglu_fp32_math, swiglu_forgets_clamp
from swiglu_check.testing import assert_matches_reference


def test_my_swiglu_matches_the_reference():
    assert_matches_reference(swiglu_fp32_math, op="deepseek-v4", dtypes=["bf16", "fp16"], limits=[7, 10, None])


def test_the_helper_catches_a_missing_clamp():
    with pytest.raises(AssertionError, match="clamp not applied"):
        assert_matches_reference(swiglu_forgets_clamp, op="deepseek-v4", dtypes="bf16", limits=[7])
