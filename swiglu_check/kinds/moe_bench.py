"""Bench rows of the `moe-w4a16` kind: the FP4 layer (fused and unfused activation)
against the same layer with bf16 weights through torch (cuBLAS), timed in one run.

Every row is timed as CUDA-graph replays (device time): the torch layer's routing is
precomputed on the host outside the timed call (its per-expert index tensors are fixed),
while the FP4 backend groups the tokens by expert inside its call. Bytes count the
weights of the experts the routing actually uses (+ x + y): the weight-bytes floor.
"""

from __future__ import annotations

from typing import Any

import torch

from swiglu_check.references import fp4, moe
from swiglu_check.references import gated as ref

from .. import dtypes as dt
from ..ops import OpSpec
from ..settings import RunSettings
from .linear_w4a16 import LazySets, fp4_bytes

BENCH_SHAPES = tuple((t, 4096, 2048, 16, 6) for t in (1, 16, 64))


def random_expert_weight(fmt: str, experts: int, n: int, k: int, device: str, g: torch.Generator) -> fp4.FP4Weight:
    """Random codes and valid scales `[E, N, K]` (timing only)."""
    packed = torch.randint(0, 256, (experts, n, k // 2), dtype=torch.uint8, device=device, generator=g)
    blocks = k // fp4.BLOCK_SIZE[fmt]
    if fmt == "nvfp4":
        scales = (torch.rand((experts, n, blocks), device=device, generator=g) + 0.5).to(torch.float8_e4m3fn)
        return fp4.FP4Weight(fmt, packed, scales.view(torch.uint8), torch.full((experts,), 1e-3, device=device))
    scales = torch.randint(118, 128, (experts, n, blocks), dtype=torch.uint8, device=device, generator=g)
    return fp4.FP4Weight(fmt, packed, scales, torch.ones(experts, device=device))


def torch_layer_plan(routing: moe.Routing) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(expert, token indices, router weights) per used expert, computed once on the host."""
    plan = []
    for expert in torch.unique(routing.ids).tolist():
        tokens, slots = (routing.ids == expert).nonzero(as_tuple=True)
        plan.append((expert, tokens, routing.weights[tokens, slots]))
    return plan


def torch_layer(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, plan: list, op: OpSpec) -> torch.Tensor:
    """The layer with 16-bit weights in torch: per expert two cuBLAS GEMMs, the eager
    clamped activation, and an index_add of the weighted rows."""
    y = torch.zeros_like(x)
    for expert, tokens, weights in plan:
        h = x[tokens] @ w13[expert].t()
        act = ref.eager(h, op)
        y.index_add_(0, tokens, (act @ w2[expert].t()) * weights[:, None].to(x.dtype))
    return y


def moe_bench_workloads(backend: Any, settings: RunSettings, shapes: Any = None) -> list[Any]:
    from ..bench import Workload, rotation_sets

    if not backend.extra.get("bench"):
        return []
    chosen = [s for s in shapes if len(s) == 5] if shapes else BENCH_SHAPES
    device = settings.device
    workloads = []
    for op in settings.ops():
        for dtype in [d for d in settings.dtypes if d in backend.dtypes]:
            torch_dtype = dt.to_torch(dtype)
            for t, h, i, e, k in chosen:
                g = torch.Generator(device=device).manual_seed(settings.seed)
                routing = moe.route(torch.randn((t, e), device=device, generator=g), k)
                used = torch.unique(routing.ids).numel()
                io_bytes = 2 * t * h * torch_dtype.itemsize
                group = f"moe-w4a16/{op.label}/{dtype}/L{op.limit}/{t}x{h}x{i}e{e}k{k}"
                label = f"{dtype} L{op.limit:g} T={t} H={h} I={i} {used}/{e} experts" if op.limit else \
                    f"{dtype} T={t} H={h} I={i} {used}/{e} experts"
                x = (torch.randn((t, h), device=device, generator=g) * 0.5).to(torch_dtype)
                dense = LazySets(lambda _j, e=e, h=h, i=i: (
                    (torch.randn((e, 2 * i, h), device=device, generator=g) / h**0.5).to(torch_dtype),
                    (torch.randn((e, h, i), device=device, generator=g) / i**0.5).to(torch_dtype)), 1)
                plan = torch_layer_plan(routing)
                workloads.append(Workload(
                    backend="torch (16-bit weights)", label=label,
                    call=lambda _i, x=x, dense=dense, plan=plan, op=op: torch_layer(x, *dense[0], plan, op),
                    bytes_moved=used * 3 * h * i * torch_dtype.itemsize + io_bytes, sets=1, group=group,
                    reference=True, graph=True, params={"dtype": dtype, "shape": [t, h, i, e, k], "format": "torch"},
                ))
                for fmt in backend.extra.get("formats", fp4.FORMATS):
                    w_bytes = fp4_bytes(fmt, 2 * i, h) + fp4_bytes(fmt, h, i)
                    sets = rotation_sets(e * w_bytes)
                    weights = LazySets(lambda _j, fmt=fmt, e=e, h=h, i=i: (
                        random_expert_weight(fmt, e, 2 * i, h, device, g),
                        random_expert_weight(fmt, e, h, i, device, g)), sets)
                    for fused in (True, False):
                        workloads.append(Workload(
                            backend=backend.name + ("" if fused else " (unfused act)"),
                            label=f"{fmt} {label}",
                            call=lambda j, x=x, weights=weights, routing=routing, op=op, fused=fused: backend.extra[
                                "moe"](x, *weights[j], routing.weights, routing.ids, op.with_limit(None),
                                       limit=op.limit, fused=fused),
                            bytes_moved=used * w_bytes + io_bytes, sets=sets, group=group, graph=True,
                            params={"dtype": dtype, "shape": [t, h, i, e, k], "format": fmt, "fused": fused},
                        ))
    return workloads
