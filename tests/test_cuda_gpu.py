"""The CUDA C++ backend on a GPU: correctness through the tool, NaN semantics, the
operator's contract (out-variant, strides, errors, stream), and planted bugs that the
tool must FAIL."""

from __future__ import annotations

import pytest
import torch

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.inputs import as_view, gated_input, InputSpec
from swiglu_check.kernels import cuda as cuda_kernels
from swiglu_check.kinds.gated import measure
from swiglu_check.ops import LAYOUTS, OpSpec, PRESETS, preset
from swiglu_check.references import gated as ref

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# aligned (vector path) and odd width (scalar path). Tiny shapes are left to the bit-for-bit
# test: a floor ratio over a few dozen values is noise, not a verdict.
SHAPES = [(64, 512), (33, 1031)]


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    ok, why = cuda_kernels.availability()
    if not ok:
        pytest.skip(f"cuda backend unavailable: {why}")
    cuda_kernels.ensure_loaded()


def _x(tokens: int, width: int, dtype: torch.dtype, limit: float | None = 7.0, seed: int = 0,
       view: str = "contiguous") -> torch.Tensor:
    return gated_input(tokens, width, dtype=dtype, limit=limit, spec=InputSpec(view=view), seed=seed, device="cuda")


@pytest.mark.parametrize("view", ["contiguous", "column-slice"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_layout_and_view_passes(name: str, layout: str, view: str) -> None:
    report = api.check("cuda", op=name, layout=layout, limits=[7, None], dtypes=list(DTYPES),
                       shapes=SHAPES, device="cuda", input_view=view)
    assert [r for r in report.results if r.verdict != "PASS"] == []
    input_sets = 2 if preset(name).activation in ("gelu", "gelu_tanh") else 1  # GELU ops add gelu-tail
    assert len(report.results) == 2 * len(DTYPES) * len(SHAPES) * input_sets


@pytest.mark.parametrize("activation", ["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("clamp", ["pre", "post"])
def test_every_activation_and_clamp_mode_passes_with_alpha_and_beta(activation: str, clamp: str) -> None:
    op = OpSpec(activation=activation, alpha=1.702, beta=1.0, limit=7.0, clamp=clamp)
    report = api.check("cuda", op=op, dtypes=list(DTYPES), shapes=SHAPES, device="cuda")
    assert {r.verdict for r in report.results} == {"PASS"}, [(r.case_id, r.reasons) for r in report.results]


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(300, 2048), (5, 8), (7, 24), (2, 18432)])
def test_vector_scalar_and_grid_variants_agree_bit_for_bit(dtype: torch.dtype, layout: str, shape) -> None:
    """The 16-byte path, the scalar path (same values, misaligned) and every grid do the
    same fp32 math, so they round to identical outputs."""
    op = OpSpec(limit=7.0, layout=layout, alpha=1.702, beta=1.0)
    x = _x(*shape, dtype)
    sliced = as_view(x, "column-slice")
    vector = cuda_kernels.act_and_mul(x, op)
    others = {
        "scalar": cuda_kernels.act_and_mul(sliced, op),
        "block per row": cuda_kernels.act_and_mul_variant(x, op, items_per_block=1 << 30),
        "32 per block": cuda_kernels.act_and_mul_variant(x, op, items_per_block=32),
        "persistent": cuda_kernels.act_and_mul_variant(x, op, max_blocks=-1),
        "scalar, 7 blocks": cuda_kernels.act_and_mul_variant(sliced, op, max_blocks=7, items_per_block=100),
        "64 threads": cuda_kernels.act_and_mul_variant(x, op, max_threads=64),
        "block per row, 128 threads": cuda_kernels.act_and_mul_variant(x, op, items_per_block=1 << 30, max_threads=128),
        "scalar, 32 threads": cuda_kernels.act_and_mul_variant(sliced, op, max_threads=32),
    }
    for name, other in others.items():
        assert torch.equal(vector.view(torch.int8), other.view(torch.int8)), name


def _fast_math(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
    return cuda_kernels.act_and_mul_variant(x, op, math="fast")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("clamp", ["pre", "post"])
def test_fast_math_silu_passes_in_16_bit_dtypes_and_keeps_nan(layout: str, clamp: str) -> None:
    """The fast silu (__expf, __fdividef): a few fp32 ulp, so bf16 and fp16 rows PASS on
    every input set, the special values (NaN, +-inf) and the heavy tail included; NaN in
    gate or up still gives NaN."""
    op = OpSpec(limit=7.0, layout=layout, clamp=clamp, alpha=1.702, beta=1.0)
    backend = Backend(name="cuda-fast-math", kind="gated", call=_fast_math, devices=("cuda",))
    report = api.check(backend, op=op, dtypes=["bf16", "fp16"], shapes=SHAPES, device="cuda",
                       input_sets=["gaussian", "boundary", "special", "heavy-tail"])
    assert len(report.results) == 2 * len(SHAPES) * 4
    assert {r.verdict for r in report.results} == {"PASS"}, [(r.case_id, r.reasons) for r in report.results]
    x, expected = _with_nans(_x(16, 512, torch.bfloat16), layout)
    assert torch.equal(torch.isnan(_fast_math(x, op)), expected)
    with pytest.raises(RuntimeError, match="silu"):
        cuda_kernels.act_and_mul_variant(x, OpSpec(activation="gelu", limit=7.0), math="fast")
    with pytest.raises(RuntimeError, match="unknown math 'quick'"):
        cuda_kernels.act_and_mul_variant(x, op, math="quick")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
def test_fast_math_is_the_default_silu_for_16_bit_outputs_only(dtype: torch.dtype, activation: str) -> None:
    """The operator's silu: __expf/__fdividef for fp16/bf16, expf and an IEEE division for
    fp32; other activations have one form. Checked bit for bit against the variants, and
    the two forms must differ somewhere on these inputs (or the check would be vacuous)."""
    op = OpSpec(activation=activation, limit=10.0, alpha=1.702, beta=1.0)
    x = gated_input(64, 4096, dtype=dtype, limit=10.0, spec=InputSpec(distribution="heavy-tail"), seed=3,
                    device="cuda")
    default = cuda_kernels.act_and_mul(x, op).view(torch.uint8)
    precise = cuda_kernels.act_and_mul_variant(x, op, math="precise").view(torch.uint8)
    if activation != "silu":
        assert torch.equal(default, precise)
        return
    fast = _fast_math(x, op).view(torch.uint8)
    assert not torch.equal(fast, precise)
    assert torch.equal(default, precise if dtype == torch.float32 else fast)


def _with_nans(x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x with NaN in some gates and some ups; the output columns that must be NaN."""
    x = x.clone()
    width = x.shape[-1] // 2
    gate_cols, up_cols = [0, 5, width - 1], [3, 9]
    for col in gate_cols:
        x[:, col if layout == "halves" else 2 * col] = float("nan")
    for col in up_cols:
        x[:, width + col if layout == "halves" else 2 * col + 1] = float("nan")
    expected = torch.zeros(x.shape[0], width, dtype=torch.bool, device=x.device)
    expected[:, gate_cols + up_cols] = True
    return x, expected


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("limit,clamp", [(7.0, "pre"), (7.0, "post"), (None, "pre")])
@pytest.mark.parametrize("width", [512, 1031])
def test_nan_in_gate_or_up_gives_nan_as_torch_does(dtype, layout, limit, clamp, width) -> None:
    op = OpSpec(limit=limit, clamp=clamp, layout=layout)
    x, expected = _with_nans(_x(16, width, dtype), layout)
    out = cuda_kernels.act_and_mul(x, op)
    assert torch.equal(torch.isnan(out), expected)
    assert torch.equal(torch.isnan(ref.fused(x, op)), expected)  # the torch reference agrees
    assert measure(op, x, out)["nan_mismatch"] == 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_fminf_clamp_hides_nan_and_the_metrics_flag_it(layout: str) -> None:
    """The planted fminf/fmaxf clamp turns NaN into +-L: the NaN check must see that."""
    op = OpSpec(limit=7.0, layout=layout)
    x, expected = _with_nans(_x(16, 512, torch.bfloat16), layout)
    out = cuda_kernels.act_and_mul_variant(x, op, fault="fminf_clamp")
    assert not torch.isnan(out).any()
    assert measure(op, x, out)["nan_mismatch"] == int(expected.sum())


def _planted(fault: str) -> Backend:
    def call(x: torch.Tensor, op: OpSpec) -> torch.Tensor:
        return cuda_kernels.act_and_mul_variant(x, op, fault=fault)

    return Backend(name=f"cuda-planted-{fault}", kind="gated", call=call, devices=("cuda",))


@pytest.mark.parametrize("fault,settings,reason", [
    ("clamp_off", dict(op="deepseek-v4", limits=[10], dtypes=["bf16", "fp16", "fp32"]), "clamp not applied"),
    ("clamp_off", dict(op="gpt-oss", limits=[7], dtypes=["bf16"]), "clamp not applied"),
    ("gelu_erf", dict(op="gemma", limits=[None], dtypes=["fp32"]), "floor ratio"),
    ("ignore_row_stride", dict(op="deepseek-v4", limits=[10], dtypes=["bf16"], input_view="column-slice"), "NaN"),
])
def test_planted_bugs_fail_through_the_runner(fault: str, settings: dict, reason: str) -> None:
    shapes = [(256, 2048), (33, 1031)]
    report = api.check([_planted(fault), "cuda"], shapes=shapes, device="cuda", **settings)
    planted = [r for r in report.results if r.backend != "cuda"]
    honest = [r for r in report.results if r.backend == "cuda"]
    assert planted and {r.verdict for r in planted} == {"FAIL"}, [(r.case_id, r.verdict) for r in planted]
    assert all(any(reason in text for text in r.reasons) for r in planted), [r.reasons for r in planted]
    assert {r.verdict for r in honest} == {"PASS"}, [(r.case_id, r.reasons) for r in honest]
    assert report.exit_code == 1


def test_gelu_erf_plant_is_invisible_on_gaussians_in_bf16_but_fails_on_the_gelu_tail() -> None:
    """In bf16 the erf/tanh difference sits under the rounding floor on Gaussian inputs (the
    upstream bug went unseen for that reason); the gelu-tail set, added by default for
    GELU ops, puts the gates where the two differ most and makes it FAIL."""
    report = api.check(_planted("gelu_erf"), op="gemma", dtypes=["bf16"], shapes=[(256, 2048)], device="cuda")
    by_set = {r.params["distribution"]: r for r in report.results}
    assert by_set["gaussian"].metrics["floor_ratio"] < 2.0
    assert by_set["gelu-tail"].verdict == "FAIL" and by_set["gelu-tail"].metrics["floor_ratio"] > 5


def test_out_variant_writes_into_a_strided_out_and_nothing_else() -> None:
    op = preset("deepseek-v4")
    x = _x(40, 1024, torch.bfloat16)
    expected = cuda_kernels.act_and_mul(x, op)
    buffer = torch.full((40, 1024 + 3), float("nan"), dtype=torch.bfloat16, device="cuda")
    out = buffer[:, 2:2 + 1024]
    returned = cuda_kernels.act_and_mul(x, op, out=out)
    assert returned.data_ptr() == out.data_ptr()
    assert torch.equal(out, expected)
    assert torch.isnan(buffer[:, :2]).all() and torch.isnan(buffer[:, -1]).all()


def test_operator_defaults_and_batched_input() -> None:
    x = _x(24, 256, torch.float16, limit=None)
    llama = preset("llama")
    assert torch.equal(torch.ops.swiglu_check.act_and_mul(x), cuda_kernels.act_and_mul(x, llama))
    batched = x.view(2, 3, 4, 512)
    assert torch.equal(cuda_kernels.act_and_mul(batched, llama), cuda_kernels.act_and_mul(x, llama).view(2, 3, 4, 256))
    empty = torch.empty(0, 512, dtype=torch.float16, device="cuda")
    assert cuda_kernels.act_and_mul(empty, llama).shape == (0, 256)


def test_runs_on_the_current_stream() -> None:
    """On a side stream, x is written after a long sleep; an op on the wrong stream
    would read x before that write lands."""
    op = preset("deepseek-v4")
    source = _x(512, 4096, torch.bfloat16, limit=10.0)
    x = torch.zeros_like(source)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)
        x.copy_(source)
        out = cuda_kernels.act_and_mul(x, op)
    side.synchronize()
    assert torch.equal(out, cuda_kernels.act_and_mul(source, op))


def _cuda(shape, dtype=torch.bfloat16):
    return torch.randn(shape, device="cuda").to(dtype)


@pytest.mark.parametrize("make_args,message", [
    (lambda: (torch.randn(4, 16), None), "must be a CUDA tensor"),
    (lambda: (_cuda((4, 16), torch.float64), None), "float32, float16 or bfloat16"),
    (lambda: (_cuda((4, 15)), None), "must be even"),
    (lambda: (_cuda((4, 32))[:, ::2], None), "must be contiguous (stride 1)"),
    (lambda: (_cuda((4, 16)), _cuda((4, 7))), "out must have shape"),
    (lambda: (_cuda((4, 16)), _cuda((4, 8), torch.float16)), "out must have x's dtype"),
    (lambda: (_cuda((4, 16)), torch.empty(4, 8, dtype=torch.bfloat16)), "out must be on x's device"),
    (lambda: (_cuda((4, 16)), _cuda((4, 16))[:, ::2]), "last dimension of out must be contiguous"),
    (lambda: (_cuda((4, 16)), _cuda((1, 8)).expand(4, 8)), "share memory"),
    (lambda: (_cuda((4, 6, 16)).transpose(0, 1), None), "cannot be flattened into rows"),
])
def test_bad_arguments_raise_clear_errors(make_args, message: str) -> None:
    x, out = make_args()
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cuda_kernels.act_and_mul(x, preset("deepseek-v4"), out=out)


@pytest.mark.parametrize("args,message", [
    (("swish", 1.0, 0.0, 7.0, "halves", "pre"), "unknown activation 'swish'"),
    (("silu", 1.0, 0.0, -1.0, "halves", "pre"), "limit must be a finite number > 0"),
    (("silu", 1.0, 0.0, 7.0, "rows", "pre"), "unknown layout 'rows'"),
    (("silu", 1.0, 0.0, 7.0, "halves", "middle"), "unknown clamp mode 'middle'"),
])
def test_bad_op_arguments_raise_clear_errors(args, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        torch.ops.swiglu_check.act_and_mul(_cuda((4, 16)), *args)


def test_x_and_out_may_not_overlap() -> None:
    x = _cuda((8, 32))
    with pytest.raises(RuntimeError, match="memory location"):
        cuda_kernels.act_and_mul(x, preset("llama"), out=x.view(-1)[: 8 * 16].view(8, 16))
