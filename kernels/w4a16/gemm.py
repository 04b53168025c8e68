"""The W4A16 GEMM in Triton: `y = x @ dequant(W)^T`, FP4 weights dequantized in registers.

x `[M, K]` bf16/fp16; W an `FP4Weight` `[N, K]` (NVFP4 or MXFP4, references/fp4.py);
y `[M, N]` in x's dtype. Packed bytes are read from memory once per program and
unpacked in registers; no dequantized copy of W exists in memory.

Numerics: every dequantized weight `e2m1 * block_scale` is exact in bf16 and fp16 (at
most 6 significant bits; MXFP4 scales must lie in [2^-23, 2^13] for fp16, and be at
most 2^113 for recipe 0, the interpreter's and the GEMV's, which scales them by 2^14 in
fp32), products and sums run in fp32 (tensor-core MMA or FMA), NVFP4's global scale
multiplies the fp32 accumulator, and the output is rounded once. With split-K, each
split writes an fp32 partial and the last program to finish a tile sums the partials in
split order (deterministic) and rounds once.

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
def _load_packed(w_ptr, k0, rows, stride_wn, n_groups,
                 GROUP: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr):
    """Packed bytes (uint8 [BN, BK/2], two codes each) of one BLOCK_K step of `rows`
    (clamped into range by the caller); whole blocks past K read as zero."""
    HG: tl.constexpr = GROUP // 2
    offs_b = tl.arange(0, BLOCK_K // 2)
    ptrs = w_ptr + rows[:, None] * stride_wn + (k0 // 2 + offs_b)[None, :]
    if EVEN_K:
        packed = tl.load(ptrs)
    else:
        packed = tl.load(ptrs, mask=((k0 // GROUP + offs_b // HG) < n_groups)[None, :], other=0)
    return packed


@triton.jit
def _load_scale_bytes(s_ptr, k0, rows, stride_sn, n_groups,
                      GROUP: tl.constexpr, BLOCK_K: tl.constexpr, PLANT: tl.constexpr,
                      DEQ: tl.constexpr, EVEN_K: tl.constexpr):
    """Block-scale bytes [BN, BK/GROUP] of one BLOCK_K step; blocks past K read the
    last block's (in range; their codes are zero or they are never used).

    DEQ 4 with K a multiple of BLOCK_K: the step's first block is clamped instead of
    each block, so the addresses stay contiguous along K and a thread loads its bytes of
    a row as one vector. NVFP4 at 64 x 256, Triton 3.6: one 8-byte load per thread and
    step with a warp's lanes on 16 rows, instead of eight 1-byte loads with the lanes on
    32 rows (16 cache lines per warp and step instead of 256); a warp then holds the rows
    it multiplies, so the conversion to the per-byte layout stays within the warp
    (bar.warp.sync instead of a CTA barrier every step). A step past the end re-reads the
    last step's bytes; the planted off-by-one leaves the last step unshifted."""
    NG: tl.constexpr = BLOCK_K // GROUP
    if EVEN_K and DEQ == 4:
        first = k0 // GROUP
        if PLANT == 2:
            first = tl.minimum(first + 1, n_groups - NG)
        else:
            first = tl.multiple_of(tl.minimum(first, n_groups - NG), NG)
        grp = first + tl.arange(0, NG)
    else:
        grp = k0 // GROUP + tl.arange(0, NG)
        if PLANT == 2:
            grp = grp + 1
        grp = tl.minimum(grp, n_groups - 1)
    return tl.load(s_ptr + rows[:, None] * stride_sn + grp[None, :])


@triton.jit
def _e4m3_asm(sb, ACT: tl.constexpr):
    """float8_e4m3fn bytes -> ACT in inline PTX, two per `cvt.rn.f16x2.e4m3x2` (bf16 through
    fp32). Exact: every e4m3 value (subnormals from 2^-9 up, 448, NaN) is an fp16 value,
    and has at most 4 significant bits. Triton 3.6 leaves this conversion where the bytes
    were loaded (8 scales per thread at 64 x 256), while it moves its own fp8 cast past the
    conversion to the per-byte layout, where each scale is converted once per lane of a
    quad: per thread and step 16 instructions instead of 64 (bf16)."""
    if ACT == tl.bfloat16:
        s = tl.inline_asm_elementwise(
            """
            {
            .reg .b32 h;
            .reg .b16 a, b;
            .reg .f32 x, y;
            cvt.rn.f16x2.e4m3x2 h, $1;
            mov.b32 {a, b}, h;
            cvt.f32.f16 x, a;
            cvt.f32.f16 y, b;
            cvt.rn.bf16x2.f32 $0, y, x;
            }
            """,
            "=r,h", [sb], dtype=tl.bfloat16, is_pure=True, pack=2)
    else:
        s = tl.inline_asm_elementwise("cvt.rn.f16x2.e4m3x2 $0, $1;", "=r,h", [sb],
                                      dtype=tl.float16, is_pure=True, pack=2)
    return s


@triton.jit
def _to_mma_order(t, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """[BN, BK/2] per packed byte in memory order -> the K-permuted order of DEQ 3: logical
    byte j = 4q + c is memory byte c * BK/8 + q. With it, the 16 bytes that one thread's
    tensor-core fragment needs (every 4th logical byte) are contiguous in memory."""
    t3 = tl.reshape(t, (BLOCK_N, 4, BLOCK_K // 8))
    return tl.reshape(tl.permute(t3, (0, 2, 1)), (BLOCK_N, BLOCK_K // 2))


@triton.jit
def _per_byte(scale, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr):
    """[BN, NG] block values -> [BN, BK/2], one per packed byte."""
    NG: tl.constexpr = BLOCK_K // GROUP
    HG: tl.constexpr = GROUP // 2
    return tl.reshape(tl.broadcast_to(scale[:, :, None], (BLOCK_N, NG, HG)), (BLOCK_N, BLOCK_K // 2))


@triton.jit
def _codes(packed, PLANT: tl.constexpr):
    """The low (even element) and high (odd element) nibbles as int16 codes."""
    wide = packed.to(tl.int16)
    lo = wide & 0xF
    hi = (wide >> 4) & 0xF
    if PLANT == 1:
        lo, hi = hi, lo
    return lo, hi


@triton.jit
def _fp4x8_asm(packed, scale, ACT: tl.constexpr):
    """Inline PTX: 4 packed bytes -> 4 even and 4 odd ACT weights (code * scale), two per
    32-bit register. Bytes 0,1 (then 2,3) go to the two halves of a register (prmt); a
    mask-multiply-mask places each code's exponent/mantissa and sign bits in 16-bit
    float position (value code * 2^-126 for bf16, 2^-14 for fp16); a packed multiply
    by 2^126 (2^14) then by the block scale gives the exact weight."""
    if ACT == tl.bfloat16:
        lo, hi = tl.inline_asm_elementwise(
            """
            {
            .reg .b32 y, t, m;
            mov.b32 m, 0x7E807E80;
            prmt.b32 y, $4, 0, 0x4140;
            and.b32 t, y, 0x000F000F;
            mul.lo.u32 t, t, 0x1040;
            and.b32 t, t, 0x81C081C0;
            mul.rn.bf16x2 t, t, m;
            mul.rn.bf16x2 $0, t, $5;
            and.b32 t, y, 0x00F000F0;
            mul.lo.u32 t, t, 0x104;
            and.b32 t, t, 0x81C081C0;
            mul.rn.bf16x2 t, t, m;
            mul.rn.bf16x2 $2, t, $5;
            prmt.b32 y, $4, 0, 0x4342;
            and.b32 t, y, 0x000F000F;
            mul.lo.u32 t, t, 0x1040;
            and.b32 t, t, 0x81C081C0;
            mul.rn.bf16x2 t, t, m;
            mul.rn.bf16x2 $1, t, $6;
            and.b32 t, y, 0x00F000F0;
            mul.lo.u32 t, t, 0x104;
            and.b32 t, t, 0x81C081C0;
            mul.rn.bf16x2 t, t, m;
            mul.rn.bf16x2 $3, t, $6;
            }
            """,
            "=r,=r,=r,=r,r,r,r", [packed, scale], dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4)
    else:
        lo, hi = tl.inline_asm_elementwise(
            """
            {
            .reg .b32 y, t, u, m;
            mov.b32 m, 0x74007400;
            prmt.b32 y, $4, 0, 0x4140;
            and.b32 t, y, 0x00070007;
            and.b32 u, y, 0x00080008;
            shl.b32 u, u, 12;
            mad.lo.u32 t, t, 0x200, u;
            mul.rn.f16x2 t, t, m;
            mul.rn.f16x2 $0, t, $5;
            and.b32 t, y, 0x00700070;
            and.b32 u, y, 0x00800080;
            shl.b32 u, u, 8;
            mad.lo.u32 t, t, 0x20, u;
            mul.rn.f16x2 t, t, m;
            mul.rn.f16x2 $2, t, $5;
            prmt.b32 y, $4, 0, 0x4342;
            and.b32 t, y, 0x00070007;
            and.b32 u, y, 0x00080008;
            shl.b32 u, u, 12;
            mad.lo.u32 t, t, 0x200, u;
            mul.rn.f16x2 t, t, m;
            mul.rn.f16x2 $1, t, $6;
            and.b32 t, y, 0x00700070;
            and.b32 u, y, 0x00800080;
            shl.b32 u, u, 8;
            mad.lo.u32 t, t, 0x20, u;
            mul.rn.f16x2 t, t, m;
            mul.rn.f16x2 $3, t, $6;
            }
            """,
            "=r,=r,=r,=r,r,r,r", [packed, scale], dtype=(tl.float16, tl.float16), is_pure=True, pack=4)
    return lo, hi


@triton.jit
def _dequant_block(packed, scale_bytes, FORMAT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr, ACT: tl.constexpr, DEQ: tl.constexpr, ASM: tl.constexpr,
                   PLANT: tl.constexpr):
    """Even and odd weights (ACT [BN, BK/2]) of packed bytes [BN, BK/2] with block-scale
    bytes [BN, NG]. DEQ 2, 3 and 4 use the inline-PTX decoder where it can run (not under
    the interpreter, which runs the same math through DEQ 0); DEQ 4 also converts NVFP4's
    e4m3 scales in inline PTX (`_e4m3_asm`), and `_load_scale_bytes` loads its scales
    contiguously where K is whole steps."""
    if DEQ >= 2 and ASM:
        if DEQ == 4 and FORMAT == 0:
            s = _e4m3_asm(scale_bytes, ACT)
        else:
            s = _scale_to_f32(scale_bytes, FORMAT).to(ACT)
        s = _per_byte(s, BLOCK_N, BLOCK_K, GROUP)
        if DEQ == 3:
            packed = _to_mma_order(packed, BLOCK_N, BLOCK_K)
            s = _to_mma_order(s, BLOCK_N, BLOCK_K)
        w_lo, w_hi = _fp4x8_asm(packed, s, ACT)
        if PLANT == 1:
            w_lo, w_hi = w_hi, w_lo
    else:
        lo, hi = _codes(packed, PLANT)
        recipe: tl.constexpr = 0 if DEQ >= 2 else DEQ
        s = _per_byte(_scale_to_f32(scale_bytes, FORMAT), BLOCK_N, BLOCK_K, GROUP)
        if DEQ == 3:
            lo = _to_mma_order(lo, BLOCK_N, BLOCK_K)
            hi = _to_mma_order(hi, BLOCK_N, BLOCK_K)
            s = _to_mma_order(s, BLOCK_N, BLOCK_K)
        w_lo = _dequant(lo, s, ACT, recipe)
        w_hi = _dequant(hi, s, ACT, recipe)
    return w_lo, w_hi


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
                DEQ: tl.constexpr, DOT_FP32: tl.constexpr, ASM: tl.constexpr, EVEN_K: tl.constexpr,
                PLANT: tl.constexpr):
    ACT = y_ptr.dtype.element_ty
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    n_ok = offs_n < N
    m_ok = offs_m < M
    rows = tl.minimum(offs_n, N - 1)  # rows and tokens past the end re-read the last one:
    tokens = tl.minimum(offs_m, M - 1)  # no load masks; their results are never stored
    n_groups = K // GROUP
    if DEQ == 3:  # x^T tile in the K order of _to_mma_order: logical k = 2(4q + c) + h
        q = offs_k // 8
        c = (offs_k // 2) % 4
        mem_k = 2 * (c * (BLOCK_K // 8) + q) + offs_k % 2
    else:
        mem_k = offs_k
    x_ptrs = x_ptr + tokens[None, :] * stride_xm + mem_k[:, None]  # x^T tile [BK, BM]
    k_start, k_stop = _k_range(K, BLOCK_K, SPLIT_K)
    acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    # block scales are prefetched one step ahead by hand: their 1-byte loads are too small
    # for the pipeliner's asynchronous copies, and a load waited on every step stalls. DEQ
    # 4's vector loads could be pipelined, but from shared memory Triton 3.6 converts the
    # scales after the per-byte layout conversion (4x the conversions, SASS: 901 vs 875
    # instructions per step at 64 x 256).
    scale_bytes = _load_scale_bytes(s_ptr, k_start, rows, stride_sn, n_groups, GROUP, BLOCK_K, PLANT, DEQ, EVEN_K)
    for k0 in range(k_start, k_stop, BLOCK_K):
        packed = _load_packed(w_ptr, k0, rows, stride_wn, n_groups, GROUP, BLOCK_K, EVEN_K)
        next_scale_bytes = _load_scale_bytes(s_ptr, k0 + BLOCK_K, rows, stride_sn, n_groups,
                                             GROUP, BLOCK_K, PLANT, DEQ, EVEN_K)
        w_lo, w_hi = _dequant_block(packed, scale_bytes, FORMAT, GROUP, BLOCK_N, BLOCK_K, ACT, DEQ, ASM, PLANT)
        scale_bytes = next_scale_bytes
        w = tl.reshape(tl.join(w_lo, w_hi), (BLOCK_N, BLOCK_K))  # element 2i low, 2i+1 high
        if EVEN_K:
            xt = tl.load(x_ptrs + k0)
        else:
            xt = tl.load(x_ptrs + k0, mask=((k0 + mem_k) < K)[:, None], other=0.0)
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
                 DEQ: tl.constexpr, DOT_FP32: tl.constexpr, ASM: tl.constexpr, EVEN_K: tl.constexpr,
                 PLANT: tl.constexpr):
    NG: tl.constexpr = BLOCK_K // GROUP
    HG: tl.constexpr = GROUP // 2
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) + tl.arange(0, 1)
    n_ok = offs_n < N
    m_ok = offs_m < M
    rows = tl.minimum(offs_n, N - 1)
    n_groups = K // GROUP
    offs_k = tl.arange(0, BLOCK_K)
    x_row = x_ptr + tl.program_id(1) * stride_xm
    k_start, k_stop = _k_range(K, BLOCK_K, SPLIT_K)
    acc = tl.full((BLOCK_N, NG, HG), 0.0, tl.float32)
    for k0 in range(k_start, k_stop, BLOCK_K):
        packed = tl.reshape(_load_packed(w_ptr, k0, rows, stride_wn, n_groups, GROUP, BLOCK_K, EVEN_K),
                            (BLOCK_N, NG, HG))
        scale_bytes = _load_scale_bytes(s_ptr, k0, rows, stride_sn, n_groups, GROUP, BLOCK_K, PLANT, DEQ, EVEN_K)
        lo, hi = _codes(packed, PLANT)
        scale = _scale_to_f32(scale_bytes, FORMAT)[:, :, None]
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
    cfg = config or pick_config(m, n, k, interpreted=INTERPRETED, fmt=weight.format)
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
        DEQ=cfg.deq, DOT_FP32=INTERPRETED and x.dtype == torch.bfloat16, ASM=not INTERPRETED,
        EVEN_K=k % cfg.block_k == 0, PLANT=PLANTS[plant],
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
