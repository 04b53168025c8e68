"""`bench --timing graph` on a GPU: every gated backend's calls can be captured in a CUDA
graph, the captured graph computes what an eager call computes, and `bench.measure`
times them by graph without falling back to events."""

from __future__ import annotations

import math

import pytest
import torch

from swiglu_check import api, bench
from swiglu_check.backends import REGISTRY
from swiglu_check.quant import Fp8Spec

pytestmark = pytest.mark.gpu

GATED_BACKENDS = ["triton", "cuda", "torch-compile", "triton-fp8"]


def _backend(name: str):
    backend = REGISTRY.get(name)
    ok, why = backend.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {why}")
    return backend


def _call(backend, op):
    if backend.kind == "gated-fp8":
        spec = Fp8Spec()
        return lambda x: backend.call(x, op, spec)
    return lambda x: backend.call(x, op)


def _outputs(result) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


@pytest.mark.parametrize("name", GATED_BACKENDS)
def test_a_captured_graph_computes_what_an_eager_call_does(name: str) -> None:
    backend = _backend(name)
    op = api.build_settings(op="deepseek-v4", device="cuda").op
    call = _call(backend, op)
    x = torch.randn(64, 2 * 1024, device="cuda").mul_(4).to(torch.bfloat16)
    for _ in range(3):  # compile and warm up outside the capture
        call(x)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _outputs(call(x))
    x.copy_(torch.randn_like(x, dtype=torch.float32).mul_(4).to(torch.bfloat16))  # new data, same buffer
    graph.replay()
    torch.cuda.synchronize()
    expected = _outputs(call(x))
    assert len(captured) == len(expected)
    for got, want in zip(captured, expected):
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), name


@pytest.mark.parametrize("name", GATED_BACKENDS)
def test_bench_times_every_gated_backend_by_graph_without_fallback(name: str) -> None:
    backend = _backend(name)
    settings = api.build_settings(op="deepseek-v4", dtypes=["bf16"], device="cuda")
    workloads = bench.workloads_for([backend], settings, [(256, 2048)])
    assert workloads
    copy = bench.copy_bandwidth(settings.device, nbytes=1 << 28)
    timings = bench.measure(workloads, copy, "graph", device=settings.device)
    for t in timings:
        assert not t.error and t.method == "graph" and not t.note, (t.error, t.note)
        assert t.median_us > 0 and math.isfinite(t.pct_copy)
        assert t.same_size_copy_us > 0 and math.isfinite(t.pct_same_size_copy)
