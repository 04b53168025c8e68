"""GPU-only checks of the Triton kernels (skipped without CUDA).

The CPU test files also run here, on CUDA tensors; these add what needs a real GPU: the
in-kernel rounding used under the interpreter equals the hardware conversion bit for
bit, offsets past 2^31 elements, and the default GPU shapes through the runner.
"""

from __future__ import annotations

import pytest
import torch

from swiglu_check import api
from swiglu_check.ops import PRESETS, preset
from swiglu_check.quant import Fp8Spec
from swiglu_check.results import PASS

pytestmark = pytest.mark.gpu

ODD_SHAPE = (257, 13831)


def _input(tokens: int, width: int, dtype: torch.dtype, scale: float = 12.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.randn((tokens, 2 * width), device="cuda", generator=generator) * scale).to(dtype)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("layout", ["halves", "interleaved"])
def test_in_kernel_bf16_rounding_equals_the_hardware_store(name: str, layout: str) -> None:
    from dataclasses import replace

    from swiglu_check.kernels.triton.gated import gated

    op = replace(preset(name), layout=layout)
    x = _input(*ODD_SHAPE, torch.bfloat16)
    hardware = gated(x, op, _exact_bf16=False)
    in_kernel = gated(x, op, _exact_bf16=True)
    assert torch.equal(hardware.view(torch.int16), in_kernel.view(torch.int16))


@pytest.mark.parametrize("spec", [Fp8Spec(), Fp8Spec(group_size=32, ue8m0=True, column_major=True)])
@pytest.mark.parametrize("name", ["deepseek-v4", "gpt-oss", "gemma"])
def test_in_kernel_e4m3_rounding_equals_the_hardware_cast(name: str, spec: Fp8Spec) -> None:
    from swiglu_check.kernels.triton.gated_fp8 import gated_fp8

    x = _input(513, 7168, torch.bfloat16)
    q_hw, s_hw = gated_fp8(x, preset(name), spec, _exact_e4m3=False)
    q_in, s_in = gated_fp8(x, preset(name), spec, _exact_e4m3=True)
    assert torch.equal(q_hw.view(torch.uint8), q_in.view(torch.uint8))
    assert torch.equal(s_hw, s_in)


def test_offsets_past_two_to_the_31_elements() -> None:
    """T x D = 2^31 + 3 * 4096 output elements (and 2x that input): the last rows must be
    what the same kernel computes on a copy of just those rows."""
    from swiglu_check.kernels.triton.gated import gated
    from swiglu_check.kernels.triton.gated_fp8 import gated_fp8

    width = 4096
    tokens = 2**31 // width + 3
    op = preset("deepseek-v4")
    x = torch.empty((tokens, 2 * width), dtype=torch.bfloat16, device="cuda")
    tail = _input(8, width, torch.bfloat16)
    x[-8:] = tail
    x[:-8].normal_()
    y = gated(x, op)
    assert torch.equal(y[-8:], gated(tail, op))
    del y
    q, scales = gated_fp8(x, op, Fp8Spec())
    q_tail, s_tail = gated_fp8(tail, op, Fp8Spec())
    assert torch.equal(q[-8:].view(torch.uint8), q_tail.view(torch.uint8)) and torch.equal(scales[-8:], s_tail)


def test_default_gpu_shapes_pass() -> None:
    report = api.check(["triton", "triton-fp8"], op="deepseek-v4", limits=[10.0], dtypes=["bf16"], device="cuda")
    assert report.results and {r.verdict for r in report.results} == {PASS}, [
        (r.case_id, r.reasons) for r in report.results if r.verdict != PASS]
    assert not any(r.interpreted for r in report.results)
