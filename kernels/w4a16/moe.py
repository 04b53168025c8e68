"""The W4A16 MoE expert MLP in Triton, with the gated activation between the GEMMs.

    y[t] = sum over t's top-k experts e of  w[t, e] * (gated(x[t] @ W13[e]^T) @ W2[e]^T)

Weights are FP4 (`FP4Weight`, NVFP4 or MXFP4) `W13 [E, 2I, H]` (gate then up, or
interleaved, per the op's layout) and `W2 [E, H, I]`; x is `[T, H]` bf16/fp16.

Launches (each a Triton kernel; no host synchronisation, so the layer can be captured
in a CUDA graph):
1. `_align_kernel` (one program): groups the T*k (token, slot) rows by expert, each
   expert's rows padded to whole BLOCK_M tiles, and the expert of every tile;
2. `_gemm1_kernel`: per tile, gate and up rows of W13[e] against the tile's gathered x
   rows (fp32 accumulation). Fused (default): the gated activation in fp32 in the
   epilogue, stored once in x's dtype (the GEMM2 input). Unfused: h stored in x's dtype,
   then `_act_kernel` applies the activation (the rounding of an unfused engine);
3. `_gemm2_kernel`: per tile, activation @ W2[e]^T times the router weight, one fp32 row
   per (token, slot);
4. `_sum_kernel`: each token's k rows summed in slot order (deterministic), rounded once.

The clamp limit is a required keyword argument of `moe_w4a16` (None for an unclamped
model); the op spec passed with it must not carry a limit of its own, so the limit has
exactly one way in and cannot be dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from swiglu_check.ops import OpSpec, validate_limit
from swiglu_check.references.fp4 import FP4Weight, check_format

from . import tables
from .gemm import (  # noqa: F401  (triton is imported there, after the interpreter set-up)
    ACT_DTYPES, FORMAT_IDS, INTERPRETED, _add, _dequant_block, _load_packed, _load_scale_bytes, tl, triton,
)

ACTIVATIONS = {"silu": 0, "gelu": 1, "gelu_tanh": 2}
LAYOUTS = {"halves": 0, "interleaved": 1}
_ALIGN_ROWS = 64  # rows per step of the align kernel


@dataclass(frozen=True)
class MoeConfig:
    block_n1: int = 64  # activation columns per GEMM1 program
    block_n2: int = 64  # output features per GEMM2 program
    block_m: int = 16  # routed rows per tile
    block_k: int = 128
    num_warps: int = 4
    num_stages: int = 3
    deq: int = 1  # dequantization recipe (gemm.py `_dequant_block`, configs.GemmConfig.deq)


INTERPRETER_CONFIG = MoeConfig(block_n1=64, block_n2=64, block_m=16, block_k=64, num_stages=1, deq=3)
# Per weight format (fp4.FORMATS), (largest token count of the bucket, config);
# scripts/tune_moe_w4a16.py writes such tables.
# Measured on the H100 (2026-11-22, session 4: the tuner's pick per bucket, bf16, both formats;
# kernels/w4a16/NOTES.md). Against the untuned default the bench went from 3.11x to 3.51x
# (NVFP4, T = 16) and 1.47x to 2.60x (T = 64) of the bf16 torch layer.
# Session 8 of the W4A16 work: deq 4 (contiguous scale loads, e4m3 scales in inline PTX) in
# place of 2 in the last bucket, same tiles, two A/B runs: NVFP4 T = 64 265-268 -> 186-189 us
# (2.6x -> 3.7x the bf16 layer), MXFP4 197-202 -> 191-192.
# At T = 16 (same tiles: block_n1 64, block_n2 128, block_m 16, block_k 128, 4 warps, 3 stages)
# deq 4 takes NVFP4 from 212-215 to 177-178 us but MXFP4 from 153-156 to 173-175 against
# deq 3, so that bucket picks per format: deq 4 for NVFP4, deq 3 for MXFP4.
_T1 = MoeConfig(block_n1=64, block_n2=128, block_m=16, block_k=128, num_warps=4, num_stages=5, deq=3)
_T16 = MoeConfig(block_n1=64, block_n2=128, block_m=16, block_k=128, num_warps=4, num_stages=3, deq=3)
_LAST = MoeConfig(block_n1=64, block_n2=64, block_m=32, block_k=128, num_warps=4, num_stages=3, deq=4)
GPU_TABLES: dict[str, tuple[tuple[int, MoeConfig], ...]] = {
    "nvfp4": ((1, _T1), (16, replace(_T16, deq=4)), (1 << 30, _LAST)),
    "mxfp4": ((1, _T1), (16, _T16), (1 << 30, _LAST)),
}
# SWIGLU_CHECK_MOE_W4A16_TABLE=<json> replaces GPU_TABLES: a list of rows (tables.table_json)
# for both formats, or {"nvfp4": [rows], "mxfp4": [rows]} (tables.tables_json).
TABLE_ENV = "SWIGLU_CHECK_MOE_W4A16_TABLE"
TABLE_KEY = "t_max"  # buckets by token count (tables.table_json)


def pick_config(tokens: int, fmt: str) -> MoeConfig:
    """The launch config for `tokens` tokens on weights of format `fmt` (nvfp4 or mxfp4)."""
    check_format(fmt)
    if INTERPRETED:
        return INTERPRETER_CONFIG
    return tables.pick_by_format(TABLE_ENV, GPU_TABLES, MoeConfig, fmt, tokens, key=TABLE_KEY)


@triton.jit
def _gated_act(g, u, limit, alpha, beta, ACTIVATION: tl.constexpr, HAS_LIMIT: tl.constexpr,
               POST: tl.constexpr):
    """The op spec's gated activation in fp32 (references/gated.py): NaN-propagating clamp
    (like torch.clamp), then act(gate) * (up + beta)."""
    if HAS_LIMIT:
        u = tl.clamp(u, -limit, limit, propagate_nan=tl.PropagateNan.ALL)
        if not POST:
            g = tl.minimum(g, limit, propagate_nan=tl.PropagateNan.ALL)
    if ACTIVATION == 0:
        a = g / (1.0 + tl.exp(-alpha * g))
    elif ACTIVATION == 1:
        a = 0.5 * g * (1.0 + tl.math.erf(alpha * g * 0.7071067811865476))
    else:
        z = alpha * g
        inner = 0.7978845608028654 * (z + 0.044715 * z * z * z)
        a = 0.5 * g * (2.0 - 2.0 / (tl.exp(2.0 * inner) + 1.0))  # 1 + tanh(inner)
    if HAS_LIMIT and POST:
        a = tl.minimum(a, limit, propagate_nan=tl.PropagateNan.ALL)
    return a * (u + beta)


@triton.jit
def _align_kernel(ids_ptr, sorted_ptr, tile_expert_ptr, R, E, P_MAX, T_MAX,
                  E_P2: tl.constexpr, BLOCK_M: tl.constexpr, BR: tl.constexpr):
    experts = tl.arange(0, E_P2)
    counts = tl.full((E_P2,), 0, tl.int32)
    for start in range(0, R, BR):
        r = start + tl.arange(0, BR)
        ids = tl.load(ids_ptr + r, mask=r < R, other=E_P2).to(tl.int32)
        counts += tl.reduce((ids[:, None] == experts[None, :]).to(tl.int32), 0, _add)
    padded = (counts + BLOCK_M - 1) // BLOCK_M * BLOCK_M
    first = tl.associative_scan(padded, 0, _add) - padded  # each expert's first padded row
    tile_end = (first + padded) // BLOCK_M  # one past each expert's last tile
    for start in range(0, P_MAX, BR):
        p = start + tl.arange(0, BR)
        tl.store(sorted_ptr + p, p * 0 + R, mask=p < P_MAX)  # R marks a padding row
    for start in range(0, T_MAX, BR):
        t = start + tl.arange(0, BR)
        owner = tl.reduce((tile_end[None, :] <= t[:, None]).to(tl.int32), 1, _add)
        tl.store(tile_expert_ptr + t, tl.minimum(owner, E), mask=t < T_MAX)  # E: no expert
    tl.debug_barrier()  # the padding rows are written before the real rows overwrite them
    seen = tl.full((E_P2,), 0, tl.int32)
    for start in range(0, R, BR):
        r = start + tl.arange(0, BR)
        ids = tl.load(ids_ptr + r, mask=r < R, other=E_P2).to(tl.int32)
        onehot = (ids[:, None] == experts[None, :]).to(tl.int32)
        before = tl.associative_scan(onehot, 0, _add) - onehot  # same-expert rows earlier in the chunk
        place = tl.reduce((before + (first + seen)[None, :]) * onehot, 1, _add)
        tl.store(sorted_ptr + place, r, mask=r < R)
        seen += tl.reduce(onehot, 0, _add)


@triton.jit
def _mma(acc, w, xt, DOT_FP32: tl.constexpr):
    if DOT_FP32:  # the interpreter's bf16 dot is broken (gemm.py docstring)
        acc = tl.dot(w.to(tl.float32), xt.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(w, xt, acc)
    return acc


@triton.jit
def _k_order(BLOCK_K: tl.constexpr, DEQ: tl.constexpr):
    """Memory K offset of each logical K row of an activation tile (gemm.py DEQ 3)."""
    offs_k = tl.arange(0, BLOCK_K)
    if DEQ == 3:
        mem_k = 2 * (((offs_k // 2) % 4) * (BLOCK_K // 8) + offs_k // 8) + offs_k % 2
    else:
        mem_k = offs_k
    return mem_k


@triton.jit
def _expert_dot(acc, a_ptrs, w_base, s_base, rows, K, stride_wn, stride_sn,
                FORMAT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                DEQ: tl.constexpr, DOT_FP32: tl.constexpr, ASM: tl.constexpr, EVEN_K: tl.constexpr,
                PLANT: tl.constexpr):
    """acc[BN, BM] += W[rows, :] @ A^T over all of K, A^T's tile pointers `a_ptrs` [BK, BM]."""
    ACT = a_ptrs.dtype.element_ty
    n_groups = K // GROUP
    mem_k = _k_order(BLOCK_K, DEQ)
    scale_bytes = _load_scale_bytes(s_base, 0, rows, stride_sn, n_groups, GROUP, BLOCK_K, PLANT, DEQ, EVEN_K)
    for k0 in range(0, K, BLOCK_K):
        packed = _load_packed(w_base, k0, rows, stride_wn, n_groups, GROUP, BLOCK_K, EVEN_K)
        next_scale_bytes = _load_scale_bytes(s_base, k0 + BLOCK_K, rows, stride_sn, n_groups, GROUP, BLOCK_K, PLANT,
                                             DEQ, EVEN_K)
        w_lo, w_hi = _dequant_block(packed, scale_bytes, FORMAT, GROUP, BLOCK_N, BLOCK_K, ACT, DEQ, ASM, PLANT)
        scale_bytes = next_scale_bytes
        w = tl.reshape(tl.join(w_lo, w_hi), (BLOCK_N, BLOCK_K))
        if EVEN_K:
            at = tl.load(a_ptrs + k0)
        else:
            at = tl.load(a_ptrs + k0, mask=((k0 + mem_k) < K)[:, None], other=0.0)
        acc = _mma(acc, w, at, DOT_FP32)
    return acc


@triton.jit(do_not_specialize=["R"])
def _gemm1_kernel(x_ptr, w_ptr, s_ptr, g_ptr, sorted_ptr, tile_expert_ptr, out_ptr, limit, alpha, beta,
                  R, E, H, I, stride_xm, stride_we, stride_wn, stride_se, stride_sn, stride_om,
                  TOPK: tl.constexpr, FORMAT: tl.constexpr, GROUP: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
                  LAYOUT: tl.constexpr, FUSED: tl.constexpr, ACTIVATION: tl.constexpr,
                  HAS_LIMIT: tl.constexpr, POST: tl.constexpr, DEQ: tl.constexpr, DOT_FP32: tl.constexpr,
                  ASM: tl.constexpr, EVEN_K: tl.constexpr, PLANT: tl.constexpr):
    tile = tl.program_id(1)
    expert = tl.load(tile_expert_ptr + tile)
    if expert < E:
        offs_j = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # activation columns
        j = tl.minimum(offs_j, I - 1)
        if LAYOUT == 0:
            gate_rows = j
            up_rows = j + I
        else:
            gate_rows = 2 * j
            up_rows = 2 * j + 1
        offs_p = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        tokens = tl.minimum(tl.load(sorted_ptr + offs_p), R - 1) // TOPK
        x_ptrs = x_ptr + tokens[None, :] * stride_xm + _k_order(BLOCK_K, DEQ)[:, None]
        w_base = w_ptr + expert.to(tl.int64) * stride_we
        s_base = s_ptr + expert.to(tl.int64) * stride_se
        acc_g = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
        acc_g = _expert_dot(acc_g, x_ptrs, w_base, s_base, gate_rows, H, stride_wn, stride_sn, FORMAT, GROUP,
                            BLOCK_N, BLOCK_K, DEQ, DOT_FP32, ASM, EVEN_K, PLANT)
        acc_u = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
        acc_u = _expert_dot(acc_u, x_ptrs, w_base, s_base, up_rows, H, stride_wn, stride_sn, FORMAT, GROUP,
                            BLOCK_N, BLOCK_K, DEQ, DOT_FP32, ASM, EVEN_K, PLANT)
        if FORMAT == 0:
            g = tl.load(g_ptr + expert)
            acc_g = acc_g * g
            acc_u = acc_u * g
        mask = (offs_j < I)[:, None]
        rows_out = out_ptr + offs_p[None, :] * stride_om
        if FUSED:
            act = _gated_act(acc_g, acc_u, limit, alpha, beta, ACTIVATION, HAS_LIMIT, POST)
            tl.store(rows_out + offs_j[:, None], act.to(out_ptr.dtype.element_ty), mask=mask)
        else:
            if LAYOUT == 0:
                gate_cols = offs_j
                up_cols = offs_j + I
            else:
                gate_cols = 2 * offs_j
                up_cols = 2 * offs_j + 1
            tl.store(rows_out + gate_cols[:, None], acc_g.to(out_ptr.dtype.element_ty), mask=mask)
            tl.store(rows_out + up_cols[:, None], acc_u.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _act_kernel(h_ptr, a_ptr, tile_expert_ptr, E, I, stride_hm, stride_am, limit, alpha, beta,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, LAYOUT: tl.constexpr, ACTIVATION: tl.constexpr,
                HAS_LIMIT: tl.constexpr, POST: tl.constexpr):
    tile = tl.program_id(1)
    expert = tl.load(tile_expert_ptr + tile)
    if expert < E:
        offs_p = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_j = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (offs_j < I)[None, :]
        if LAYOUT == 0:
            gate_cols = offs_j
            up_cols = offs_j + I
        else:
            gate_cols = 2 * offs_j
            up_cols = 2 * offs_j + 1
        rows = h_ptr + offs_p[:, None] * stride_hm
        g = tl.load(rows + gate_cols[None, :], mask=mask, other=0.0).to(tl.float32)
        u = tl.load(rows + up_cols[None, :], mask=mask, other=0.0).to(tl.float32)
        act = _gated_act(g, u, limit, alpha, beta, ACTIVATION, HAS_LIMIT, POST)
        tl.store(a_ptr + offs_p[:, None] * stride_am + offs_j[None, :], act.to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["R"])
def _gemm2_kernel(a_ptr, w_ptr, s_ptr, g_ptr, sorted_ptr, tile_expert_ptr, topw_ptr, out_ptr,
                  R, E, H, I, stride_am, stride_we, stride_wn, stride_se, stride_sn,
                  FORMAT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                  BLOCK_K: tl.constexpr, DEQ: tl.constexpr, DOT_FP32: tl.constexpr, ASM: tl.constexpr,
                  EVEN_K: tl.constexpr, PLANT: tl.constexpr):
    tile = tl.program_id(1)
    expert = tl.load(tile_expert_ptr + tile)
    if expert < E:
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        rows = tl.minimum(offs_n, H - 1)
        offs_p = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        r = tl.load(sorted_ptr + offs_p)
        a_ptrs = a_ptr + offs_p[None, :] * stride_am + _k_order(BLOCK_K, DEQ)[:, None]
        w_base = w_ptr + expert.to(tl.int64) * stride_we
        s_base = s_ptr + expert.to(tl.int64) * stride_se
        acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
        acc = _expert_dot(acc, a_ptrs, w_base, s_base, rows, I, stride_wn, stride_sn, FORMAT, GROUP,
                          BLOCK_N, BLOCK_K, DEQ, DOT_FP32, ASM, EVEN_K, PLANT)
        if FORMAT == 0:
            acc = acc * tl.load(g_ptr + expert)
        acc = acc * tl.load(topw_ptr + tl.minimum(r, R - 1))[None, :]
        mask = (offs_n < H)[:, None] & (r < R)[None, :]
        tl.store(out_ptr + r[None, :].to(tl.int64) * H + offs_n[:, None], acc, mask=mask)


@triton.jit
def _sum_kernel(rows_ptr, y_ptr, H, TOPK: tl.constexpr, BLOCK: tl.constexpr):
    token = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < H
    base = rows_ptr + token.to(tl.int64) * TOPK * H + offs
    total = tl.load(base, mask=mask, other=0.0)
    for s in tl.static_range(1, TOPK):
        total += tl.load(base + s * H, mask=mask, other=0.0)
    tl.store(y_ptr + token.to(tl.int64) * H + offs, total.to(y_ptr.dtype.element_ty), mask=mask)


def _activation_args(op: OpSpec, limit: float | None) -> tuple[dict, dict]:
    """(runtime scalars, compile-time flags) of the gated activation for the kernels."""
    spec = dict(limit=0.0 if limit is None else float(limit), alpha=float(op.alpha), beta=float(op.beta))
    flags = dict(ACTIVATION=ACTIVATIONS[op.activation], HAS_LIMIT=limit is not None, POST=op.clamp == "post")
    return spec, flags


def _launch_act(h: torch.Tensor, act: torch.Tensor, tile_expert: torch.Tensor, experts: int, block_m: int,
                op: OpSpec, limit: float | None) -> None:
    """`_act_kernel` over every tile of `tile_expert` (h and act hold whole tiles of rows)."""
    spec, flags = _activation_args(op, limit)
    _act_kernel[(triton.cdiv(act.shape[1], 128), tile_expert.numel())](
        h, act, tile_expert, experts, act.shape[1], h.stride(0), act.stride(0), spec["limit"], spec["alpha"],
        spec["beta"], BLOCK_M=block_m, BLOCK_N=128, LAYOUT=LAYOUTS[op.layout], **flags)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def check_moe_args(x: torch.Tensor, w13: FP4Weight, w2: FP4Weight, topk_weights: torch.Tensor,
                   topk_ids: torch.Tensor, op: OpSpec, limit: float | None) -> None:
    if op.limit is not None:
        raise ValueError("pass the clamp limit as `limit=` only (op.limit must be None)")
    if limit is not None:
        validate_limit(limit)
    if x.dim() != 2 or x.dtype not in ACT_DTYPES:
        raise ValueError(f"x must be [T, H] bf16 or fp16, got {tuple(x.shape)} {x.dtype}")
    if w13.packed.dim() != 3 or w2.packed.dim() != 3 or w13.format != w2.format:
        raise ValueError("w13 and w2 must be [E, N, K] FP4 weights of one format")
    experts, two_i, hidden = w13.shape
    if two_i % 2 or tuple(w2.shape) != (experts, hidden, two_i // 2) or x.shape[1] != hidden:
        raise ValueError(f"shapes do not match: x {tuple(x.shape)}, w13 {w13.shape}, w2 {w2.shape}")
    if topk_ids.shape != topk_weights.shape or topk_ids.dim() != 2 or topk_ids.shape[0] != x.shape[0]:
        raise ValueError("topk_ids and topk_weights must both be [T, k]")
    for t in (w13.packed, w2.packed, topk_ids, topk_weights):
        if t.device != x.device:
            raise ValueError("every tensor must be on x's device")


GEMMS = ("auto", "triton", "cuda")
CUDA_MAX_TOKENS = 2  # `gemm="auto"` takes the CUDA routed-rows GEMMs up to this many tokens


def use_cuda_gemms(gemm: str, tokens: int, device: torch.device) -> bool:
    """Whether the layer runs its GEMMs on the CUDA routed-rows kernel (`gemm`: "cuda"
    always, "triton" never, "auto" for a few tokens on a GPU where it builds)."""
    if gemm not in GEMMS:
        raise ValueError(f"gemm must be one of {GEMMS}, got {gemm!r}")
    if gemm != "auto":
        return gemm == "cuda"
    if INTERPRETED or device.type != "cuda" or tokens > CUDA_MAX_TOKENS:
        return False
    from . import cuda_gemm

    return cuda_gemm.availability()[0]


def moe_w4a16(x: torch.Tensor, w13: FP4Weight, w2: FP4Weight, topk_weights: torch.Tensor,
              topk_ids: torch.Tensor, op: OpSpec, *, limit: float | None, fused: bool = True,
              config: MoeConfig | None = None, gemm: str = "auto") -> torch.Tensor:
    """The routed expert MLP `[T, H]` in x's dtype (see the module docstring)."""
    check_moe_args(x, w13, w2, topk_weights, topk_ids, op, limit)
    tokens, hidden = x.shape
    experts, two_i, _ = w13.shape
    inter = two_i // 2
    top_k = topk_ids.shape[1]
    rows = tokens * top_k
    y = torch.empty((tokens, hidden), dtype=x.dtype, device=x.device)
    if rows == 0:
        return y
    if use_cuda_gemms(gemm, tokens, x.device):
        return _moe_routed_rows(x, w13, w2, topk_weights, topk_ids, op, limit, fused, y)
    cfg = config or pick_config(tokens, w13.format)
    block = w13.block
    if cfg.block_k % block:
        raise ValueError(f"block_k {cfg.block_k} must be a multiple of {w13.format}'s block {block}")
    bm = cfg.block_m
    p_max = triton.cdiv(rows + experts * (bm - 1), bm) * bm
    t_max = p_max // bm
    device = x.device
    sorted_rows = torch.empty(p_max, dtype=torch.int32, device=device)
    tile_expert = torch.empty(t_max, dtype=torch.int32, device=device)
    ids = topk_ids.reshape(-1).contiguous()
    _align_kernel[(1,)](ids, sorted_rows, tile_expert, rows, experts, p_max, t_max,
                        E_P2=_next_pow2(max(experts, 2)), BLOCK_M=bm, BR=_ALIGN_ROWS)
    x = x.contiguous()
    spec, flags = _activation_args(op, limit)
    common = dict(FORMAT=FORMAT_IDS[w13.format], GROUP=block, BLOCK_M=bm, BLOCK_K=cfg.block_k, DEQ=cfg.deq,
                  DOT_FP32=INTERPRETED and x.dtype == torch.bfloat16, ASM=not INTERPRETED, PLANT=0,
                  num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    act = torch.empty((p_max, inter), dtype=x.dtype, device=device)
    gemm1_out = act if fused else torch.empty((p_max, two_i), dtype=x.dtype, device=device)
    _gemm1_kernel[(triton.cdiv(inter, cfg.block_n1), t_max)](
        x, w13.packed, w13.scales, w13.global_scale, sorted_rows, tile_expert, gemm1_out,
        spec["limit"], spec["alpha"], spec["beta"],
        rows, experts, hidden, inter, x.stride(0), w13.packed.stride(0), w13.packed.stride(1),
        w13.scales.stride(0), w13.scales.stride(1), gemm1_out.stride(0),
        TOPK=top_k, BLOCK_N=cfg.block_n1, LAYOUT=LAYOUTS[op.layout], FUSED=fused,
        EVEN_K=hidden % cfg.block_k == 0, **flags, **common)
    if not fused:
        _launch_act(gemm1_out, act, tile_expert, experts, bm, op, limit)
    per_row = torch.empty((rows, hidden), dtype=torch.float32, device=device)
    _gemm2_kernel[(triton.cdiv(hidden, cfg.block_n2), t_max)](
        act, w2.packed, w2.scales, w2.global_scale, sorted_rows, tile_expert, topk_weights.reshape(-1).contiguous(),
        per_row, rows, experts, hidden, inter, act.stride(0), w2.packed.stride(0), w2.packed.stride(1),
        w2.scales.stride(0), w2.scales.stride(1),
        BLOCK_N=cfg.block_n2, EVEN_K=inter % cfg.block_k == 0, **common)
    _sum_kernel[(tokens, triton.cdiv(hidden, 1024))](per_row, y, hidden, TOPK=top_k, BLOCK=1024)
    return y


def _moe_routed_rows(x: torch.Tensor, w13: FP4Weight, w2: FP4Weight, topk_weights: torch.Tensor,
                     topk_ids: torch.Tensor, op: OpSpec, limit: float | None, fused: bool,
                     y: torch.Tensor) -> torch.Tensor:
    """The layer on the CUDA GEMM's routed rows (cuda_gemm.routed_rows_matmul), for decode:
    GEMM1 gives each (token, slot) row's h = x @ W13[e]^T in fp32 (x's dtype when not
    `fused`: the rounding of an unfused engine), `_act_kernel` the gated activation in fp32
    rounded once to x's dtype, GEMM2 each row's fp32 act @ W2[e]^T times its router weight,
    `_sum_kernel` a token's rows in slot order. The same arithmetic as the Triton kernels."""
    from . import cuda_gemm

    tokens, hidden = x.shape
    inter = w13.shape[1] // 2
    top_k = topk_ids.shape[1]
    rows = tokens * top_k
    bm = 16  # `_act_kernel` works in tiles of 16 rows: h and act get whole tiles
    padded = triton.cdiv(rows, bm) * bm
    ids = topk_ids.reshape(-1).to(torch.int32).contiguous()
    h = torch.empty((padded, 2 * inter), dtype=torch.float32 if fused else x.dtype, device=x.device)
    cuda_gemm.routed_rows_matmul(x.contiguous(), w13, ids, out=h[:rows])
    act = torch.empty((padded, inter), dtype=x.dtype, device=x.device)
    tile_expert = torch.zeros(padded // bm, dtype=torch.int32, device=x.device)  # every tile live (E = 1)
    _launch_act(h, act, tile_expert, 1, bm, op, limit)
    per_row = cuda_gemm.routed_rows_matmul(act[:rows], w2, ids, topk_weights.reshape(-1))
    _sum_kernel[(tokens, triton.cdiv(hidden, 1024))](per_row, y, hidden, TOPK=top_k, BLOCK=1024)
    return y
