"""The W4A16 GEMM in Triton: `y = x @ dequant(W)^T`, FP4 weights dequantized in registers.

x `[M, K]` bf16/fp16; W an `FP4Weight` `[N, K]` (NVFP4 or MXFP4, references/fp4.py);
y `[M, N]` in x's dtype. Packed bytes are read from memory once per program and
unpacked in registers; no dequantized copy of W exists in memory.

Numerics: every dequantized weight `e2m1 * block_scale` is exact in bf16 and fp16 (at
most 6 significant bits; MXFP4 scales must lie in [2^-23, 2^13] for fp16), products and
sums run in fp32 (tensor-core MMA or FMA), NVFP4's global scale multiplies the fp32
accumulator, and the output is rounded once. With split-K, each split writes an fp32
partial and the last program to finish a tile sums the partials in split order
(deterministic) and rounds once.

Kernels:
- `_dot_kernel`: tensor cores on the transposed tile `W_tile [BN, BK] @ x_tile^T [BK, BM]`
  (the token count sits in the MMA's N dimension, so M = 1..16 wastes little);
- `_gemv_kernel`: CUDA-core FMAs for one token per program (M = 1).

Planted bugs for the tool's own tests (`plant=`): "nibble-swap" decodes the high nibble
as the even element, "scale-off-by-one" reads the next block's scale. Both run this
same code with one compile-time switch flipped.

Without a CUDA device, Triton's interpreter runs the kernels (TRITON_INTERPRET=1 is set
before this module's kernels are decorated). The kernels call no `triton.language`
helper that is itself a `@jit` function (`tl.zeros`, `tl.cdiv`, `tl.sum`, ...): when
something imported Triton before the variable was set (torch.compile does), those
helpers are compiled-mode functions that an interpreted kernel cannot call. Triton 3.9's interpreter multiplies bf16 dot operands as
raw integers (it stores bf16 as uint16 and calls np.matmul), so under the interpreter
bf16 operands are upcast to fp32 (exactly) before `tl.dot`; the math is unchanged.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from swiglu_check.references.fp4 import FP4Weight  # noqa: E402

from .configs import GemmConfig, pick_config  # noqa: E402

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
FORMAT_IDS = {"nvfp4": 0, "mxfp4": 1}
PLANTS = {None: 0, "nibble-swap": 1, "scale-off-by-one": 2}
ACT_DTYPES = (torch.bfloat16, torch.float16)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _scale_to_f32(sb, FORMAT: tl.constexpr):
    """Block-scale bytes -> fp32: float8_e4m3fn (NVFP4) or E8M0 (MXFP4; 0 is 2^-127, 255 NaN)."""
    if FORMAT == 0:
        scale = sb.to(tl.float8e4nv, bitcast=True).to(tl.float32)
    else:
        e = sb.to(tl.int32)
        bits = tl.where(e == 0, 0x00400000, tl.where(e == 255, 0x7FC00000, e << 23))
        scale = bits.to(tl.float32, bitcast=True)
    return scale


@triton.jit
def _dequant(code, scale, ACT: tl.constexpr, DEQ: tl.constexpr):
    """E2M1 codes (int16 0..15) times fp32 block scales, as exact ACT values.

    The code's bits are moved into a 16-bit float whose exponent field holds E2M1's
    exponent, so the float equals `e2m1 * 2^-14` (fp16) or `e2m1 * 2^-126` (bf16);
    E2M1's subnormal 0.5 lands on the 16-bit float's subnormal. DEQ 0 scales in fp32
    then rounds (exactly) to ACT; DEQ 1 multiplies in ACT throughout.
    """
    if DEQ == 0:
        bits = ((code & 0x7) << 9) | ((code & 0x8) << 12)
        w = (bits.to(tl.float16, bitcast=True).to(tl.float32) * (scale * 16384.0)).to(ACT)
    else:
        if ACT == tl.bfloat16:
            bits = ((code & 0x7) << 6) | ((code & 0x8) << 12)
            magic = tl.full((1,), 2.0**126, tl.bfloat16)
        else:
            bits = ((code & 0x7) << 9) | ((code & 0x8) << 12)
            magic = tl.full((1,), 16384.0, tl.float16)
        w = bits.to(ACT, bitcast=True) * magic * scale.to(ACT)
    return w


@triton.jit
def _dequant_f32(code, scale):
    """E2M1 codes times fp32 block scales, in fp32 (exact)."""
    bits = ((code & 0x7) << 9) | ((code & 0x8) << 12)
    return bits.to(tl.float16, bitcast=True).to(tl.float32) * (scale * 16384.0)


@triton.jit
def _load_block(w_ptr, s_ptr, k0, offs_n, n_ok, stride_wn, stride_sn, n_groups,
                FORMAT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                PLANT: tl.constexpr):
    """Codes (low and high nibbles, int16 [BN, NG, HG]) and fp32 scales [BN, NG, 1] of
    one BLOCK_K step; whole blocks past K read as zero."""
    NG: tl.constexpr = BLOCK_K // GROUP
    HG: tl.constexpr = GROUP // 2
    offs_b = tl.arange(0, BLOCK_K // 2)
    byte_ok = (k0 // GROUP + offs_b // HG) < n_groups
    packed = tl.load(w_ptr + offs_n[:, None] * stride_wn + (k0 // 2 + offs_b)[None, :],
                     mask=n_ok[:, None] & byte_ok[None, :], other=0)
    packed = tl.reshape(packed, (BLOCK_N, NG, HG)).to(tl.int16)
    lo = packed & 0xF
    hi = (packed >> 4) & 0xF
    if PLANT == 1:
        lo, hi = hi, lo
    grp = k0 // GROUP + tl.arange(0, NG)
    if PLANT == 2:
        grp = grp + 1
    sb = tl.load(s_ptr + offs_n[:, None] * stride_sn + grp[None, :],
                 mask=n_ok[:, None] & (grp < n_groups)[None, :], other=0)
    scale = _scale_to_f32(sb, FORMAT)
    return lo, hi, scale[:, :, None]


@triton.jit
def _k_range(K, BLOCK_K: tl.constexpr, SPLIT_K):
    """[start, stop) of this program's K split, in whole BLOCK_K steps."""
    steps = (K + BLOCK_K - 1) // BLOCK_K
    per_split = (steps + SPLIT_K - 1) // SPLIT_K
    start = tl.program_id(2) * per_split * BLOCK_K
    stop = tl.minimum(K, start + per_split * BLOCK_K)
    return start, stop


@triton.jit
def _store_tile(acc, y_ptr, part_ptr, count_ptr, offs_n, offs_m, n_ok, m_ok, M, N, stride_ym, SPLIT_K):
    """Write the fp32 tile acc[n, m] to y[m, n], rounding once; with split-K, through
    fp32 partials summed in split order by the last program of the tile."""
    mask = n_ok[:, None] & m_ok[None, :]
    y_ptrs = y_ptr + offs_m[None, :] * stride_ym + offs_n[:, None]
    if SPLIT_K == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        part_ptrs = part_ptr + offs_m[None, :] * N + offs_n[:, None]
        tl.store(part_ptrs + tl.program_id(2) * M * N, acc, mask=mask)
        tl.debug_barrier()  # every thread's partial is written before the release below
        tile = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
        arrived = tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            total = tl.load(part_ptrs, mask=mask, other=0.0, cache_modifier=".cg")
            for s in range(1, SPLIT_K):
                total += tl.load(part_ptrs + s * M * N, mask=mask, other=0.0, cache_modifier=".cg")
            tl.store(y_ptrs, total.to(y_ptr.dtype.element_ty), mask=mask)
            tl.atomic_xchg(count_ptr + tile, 0)  # ready for the next call


@triton.jit(do_not_specialize=["M", "SPLIT_K"])
def _dot_kernel(x_ptr, w_ptr, s_ptr, g_ptr, y_ptr, part_ptr, count_ptr,
                M, N, K, stride_xm, stride_wn, stride_sn, stride_ym, SPLIT_K,
                FORMAT: tl.constexpr, GROUP: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
                DEQ: tl.constexpr, DOT_FP32: tl.constexpr, PLANT: tl.constexpr):
    ACT = y_ptr.dtype.element_ty
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    n_ok = offs_n < N
    m_ok = offs_m < M
    n_groups = K // GROUP
    x_ptrs = x_ptr + offs_m[None, :] * stride_xm + offs_k[:, None]  # x^T tile [BK, BM]
    k_start, k_stop = _k_range(K, BLOCK_K, SPLIT_K)
    acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    for k0 in range(k_start, k_stop, BLOCK_K):
        lo, hi, scale = _load_block(w_ptr, s_ptr, k0, offs_n, n_ok, stride_wn, stride_sn, n_groups,
                                    FORMAT, GROUP, BLOCK_N, BLOCK_K, PLANT)
        w_lo = _dequant(lo, scale, ACT, DEQ)
        w_hi = _dequant(hi, scale, ACT, DEQ)
        w = tl.reshape(tl.join(w_lo, w_hi), (BLOCK_N, BLOCK_K))  # element 2i low, 2i+1 high
        xt = tl.load(x_ptrs + k0, mask=((k0 + offs_k) < K)[:, None] & m_ok[None, :], other=0.0)
        if DOT_FP32:
            acc = tl.dot(w.to(tl.float32), xt.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(w, xt, acc)
    if FORMAT == 0:
        acc = acc * tl.load(g_ptr)
    _store_tile(acc, y_ptr, part_ptr, count_ptr, offs_n, offs_m, n_ok, m_ok, M, N, stride_ym, SPLIT_K)


@triton.jit(do_not_specialize=["M", "SPLIT_K"])
def _gemv_kernel(x_ptr, w_ptr, s_ptr, g_ptr, y_ptr, part_ptr, count_ptr,
                 M, N, K, stride_xm, stride_wn, stride_sn, stride_ym, SPLIT_K,
                 FORMAT: tl.constexpr, GROUP: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
                 DEQ: tl.constexpr, DOT_FP32: tl.constexpr, PLANT: tl.constexpr):
    NG: tl.constexpr = BLOCK_K // GROUP
    HG: tl.constexpr = GROUP // 2
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) + tl.arange(0, 1)
    n_ok = offs_n < N
    m_ok = offs_m < M
    n_groups = K // GROUP
    offs_k = tl.arange(0, BLOCK_K)
    x_row = x_ptr + tl.program_id(1) * stride_xm
    k_start, k_stop = _k_range(K, BLOCK_K, SPLIT_K)
    acc = tl.full((BLOCK_N, NG, HG), 0.0, tl.float32)
    for k0 in range(k_start, k_stop, BLOCK_K):
        lo, hi, scale = _load_block(w_ptr, s_ptr, k0, offs_n, n_ok, stride_wn, stride_sn, n_groups,
                                    FORMAT, GROUP, BLOCK_N, BLOCK_K, PLANT)
        xk = tl.load(x_row + k0 + offs_k, mask=(k0 + offs_k) < K, other=0.0).to(tl.float32)
        x_even, x_odd = tl.split(tl.reshape(xk, (NG, HG, 2)))
        acc += _dequant_f32(lo, scale) * x_even[None, :, :] + _dequant_f32(hi, scale) * x_odd[None, :, :]
    out = tl.reduce(tl.reduce(acc, 2, _add), 1, _add)
    if FORMAT == 0:
        out = out * tl.load(g_ptr)
    _store_tile(out[:, None], y_ptr, part_ptr, count_ptr, offs_n, offs_m, n_ok, m_ok, M, N, stride_ym, SPLIT_K)


_COUNTERS: dict[torch.device, torch.Tensor] = {}


def _counters(device: torch.device, size: int) -> torch.Tensor:
    """Zeroed per-tile arrival counters for split-K; the last program of a tile resets
    its counter, so the buffer stays zero between calls (one stream at a time)."""
    buf = _COUNTERS.get(device)
    if buf is None or buf.numel() < size:
        buf = torch.zeros(max(size, 1 << 16), dtype=torch.int32, device=device)
        _COUNTERS[device] = buf
    return buf


_NO_PARTIALS: dict[torch.device, torch.Tensor] = {}


def _no_partials(device: torch.device) -> torch.Tensor:
    if device not in _NO_PARTIALS:
        _NO_PARTIALS[device] = torch.zeros(1, dtype=torch.float32, device=device)
    return _NO_PARTIALS[device]


def _check_args(x: torch.Tensor, weight: FP4Weight) -> None:
    if not isinstance(weight, FP4Weight):
        raise TypeError(f"weight must be an FP4Weight, got {type(weight).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must be [M, K], got shape {tuple(x.shape)}")
    if x.dtype not in ACT_DTYPES:
        raise ValueError(f"x must be bf16 or fp16, got {x.dtype}")
    if weight.packed.dim() != 2:
        raise ValueError(f"weight must be one [N, K] matrix, got {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"K mismatch: x has {x.shape[1]}, the weight {weight.shape[1]}")
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device}, the weight on {weight.device}")


def sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def w4a16_matmul(x: torch.Tensor, weight: FP4Weight, *, config: GemmConfig | None = None,
                 plant: str | None = None) -> torch.Tensor:
    """`x @ dequant(weight)^T` in x's dtype (fp32 accumulation, one rounding)."""
    _check_args(x, weight)
    if plant not in PLANTS:
        raise ValueError(f"unknown planted bug {plant!r}")
    m, k = x.shape
    n = weight.shape[0]
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return y
    if k == 0:
        return y.zero_()
    cfg = config or pick_config(m, n, k, interpreted=INTERPRETED, block=weight.block)
    launch(x, weight, y, cfg, plant)
    return y


def launch(x: torch.Tensor, weight: FP4Weight, y: torch.Tensor, cfg: GemmConfig, plant: str | None = None) -> object:
    """Run one kernel into y (no argument checks); returns Triton's compiled kernel."""
    if cfg.split_k < 1 or cfg.block_k % weight.block:
        raise ValueError(f"bad config {cfg}: split_k >= 1 and block_k a multiple of {weight.block} needed")
    if x.stride(1) != 1:
        x = x.contiguous()
    packed, scales = weight.packed, weight.scales
    if packed.stride(1) != 1 or scales.stride(1) != 1:
        packed, scales = packed.contiguous(), scales.contiguous()
    m, k = x.shape
    n = y.shape[1]
    gemv = cfg.block_m == 1
    grid = (triton.cdiv(n, cfg.block_n), m if gemv else triton.cdiv(m, cfg.block_m), cfg.split_k)
    counters = _counters(x.device, grid[0] * grid[1])
    if cfg.split_k > 1:
        partials = torch.empty((cfg.split_k, m, n), dtype=torch.float32, device=x.device)
    else:  # unused; same pointer type, so one compiled kernel serves every split
        partials = _no_partials(x.device)
    kernel = _gemv_kernel if gemv else _dot_kernel
    return kernel[grid](
        x, packed, scales, weight.global_scale, y, partials, counters,
        m, n, k, x.stride(0), packed.stride(0), scales.stride(0), y.stride(0), cfg.split_k,
        FORMAT=FORMAT_IDS[weight.format], GROUP=weight.block,
        BLOCK_N=cfg.block_n, BLOCK_M=cfg.block_m, BLOCK_K=cfg.block_k,
        DEQ=cfg.deq, DOT_FP32=INTERPRETED and x.dtype == torch.bfloat16, PLANT=PLANTS[plant],
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
