// W4A16 GEMM in CUDA C++: y[M, N] = x[M, K] @ dequant(W[N, K])^T, FP4 (E2M1) weights
// with NVFP4 (e4m3 scales per 16) or MXFP4 (E8M0 scales per 32) block scales, dequantized
// in registers and multiplied on tensor cores (mma.sync m16n8k16, fp32 accumulation).
//
// K must be a multiple of 32 (16-byte aligned weight rows); a partial last chunk masks
// whole 32-element lane segments. Made for decode and small batches (M <= 64 per token
// group), where the weights' bytes decide the time: every packed byte is read once, with
// 16-byte loads, and turned into MMA operands without any shuffle between threads.
//
// Layout of the work
// - A CTA is kWarps warps; warp `w` owns R tiles of 16 weight rows (the MMA's M side, so
//   the few tokens sit in the MMA's N = 8 side: MT tiles of 8 tokens), and all warps of a
//   CTA walk the same K chunks (128 elements) of one split of K.
// - x, one of two ways (XR): the CTA stages its tokens' x over its K range in shared memory
//   up front, in MMA operand order (the host picks a split of K that keeps this slice
//   small: cuda_gemm.X_SHARED_BUDGET); or x streams chunk by chunk through a ring of S
//   stages shared by the CTA's warps (cp.async, with the weights of the same step; a
//   __syncthreads per step; tiled layout only, whose K order takes x as loaded), so x costs
//   no split of K and no wait before the first chunk, and all the CTA's warps share each copy.
// - Each warp streams its weights through its own ring of S chunks in shared memory
//   (cp.async, S - 1 chunks in flight): the ring costs no registers, so the depth that
//   covers DRAM latency does not cost occupancy (a register ring of 3-4 chunks did: 1.3x
//   slower at M = 1, measured). The rows' block-scale bytes ride in the same ring (ncu:
//   scale loads kept in registers waited on L2/DRAM round trips for a quarter of the
//   warps' samples).
// - A CTA takes MT tiles of 8 tokens (1, 2; with the x ring or the producer warps also 4,
//   8: the weights are decoded once for up to 64 tokens). More tokens run as groups of
//   8 * MT along grid x, next to each other, so the groups reading one weight tile share
//   it through L2.
// - Split-K over gridDim.y: each split writes fp32 partials; the last CTA of a tile to
//   arrive sums them in split order (deterministic) and rounds once.
// - gemm_producer_kernel (below, up to 64 tokens per token group) splits the CTA instead
//   into warps that copy and warps that compute, handing a CTA-wide ring over by mbarriers.
//
// The K permutation (why no shuffles are needed)
// For one weight row and one 128-element chunk, lane (g, c) = (lane / 4, lane % 4) loads
// the 16 bytes [16c, 16c + 16): elements 32c .. 32c + 31, as four 32-bit words. In word w
// nibble i is element 8w + i (the even element sits in a byte's low nibble). The decoder
// turns nibbles (j, j + 4) of a word into one bf16x2 / f16x2 register P_j. MMA step
// (w, t) for t in {0, 1} uses A = {P_2t(row g), P_2t(row g+8), P_2t+1(row g), P_2t+1(row g+8)},
// so the step's logical k (2c, 2c+1, 2c+8, 2c+9) are the physical elements
// 32c + 8w + (2t, 2t+4, 2t+1, 2t+5). The B operand (x) uses the same map: lane (g, c)
// loads x[token g][32c + 8w .. + 8) (16 bytes) and pairs its halves with two byte
// permutes. A permutation of K applied to both operands leaves the product unchanged.
// The tiled layout stores each word's codes so that its pairs are neighbours instead:
// Q_j = elements (8w + 2j, 8w + 2j + 1), step t uses A = {Q_2t(g), Q_2t(g+8), Q_2t+1(g),
// Q_2t+1(g+8)}, and x's 16 bytes are the B operands as loaded (no permutes; decode_word).
//
// Decoding: a code's exponent/mantissa bits go to the 16-bit float's exponent field's low
// bits and mantissa's top bit, its sign to bit 15, so the float equals code * 2^-126
// (bf16) or code * 2^-14 (fp16), subnormal 0.5 included; one packed multiply by 2^126
// (2^14) and one by the block scale give the exact weight (at most 6 significant bits).
#pragma once

#include <cuda.h>  // CUtensorMap and its encoder's types only: the encoder is found at run time (no libcuda link)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <cstdint>
#include <type_traits>

#include "w4a16_gemm.h"

namespace swiglu_check {
namespace w4a16 {

// Planted bugs, for the tool's own tests: the nibble order of a byte swapped; the scale of
// the next block used. The rest are diagnostics for scripts/profile_w4a16_cuda.py:
// kNoMath streams the weights and scales through the ring but neither
// decodes nor multiplies (the kernel's memory and launch structure alone; wrong results);
// kNoXLoads, kNoMma and kNoDecode each leave one part of the math out (x's shared loads, the
// MMAs, the decode and scaling), to time what each part costs (M = 16 kernels only).
enum Plant : int { kNoPlant = 0, kNibbleSwap = 1, kScaleOffByOne = 2, kNoMath = 3, kNoXLoads = 4, kNoMma = 5, kNoDecode = 6 };

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(selector));
  return d;
}

__device__ __forceinline__ uint4 load_x(const void* p) {  // x: the CTAs of a split stage the same slice, keep in L1
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// 16 bytes global -> shared, bypassing L1 (weights are read once); zero-filled when !valid.
// L2::256B asks L2 to fetch the 256 bytes around each miss: the next chunks of a row are
// then L2 hits and DRAM sees long runs instead of 64-byte ones (measured on the H100:
// 22.4 -> 20.2 us at 1x4096x14336; scripts/weight_stream_bench.py shows the same gain
// for a copy-only stream with this access pattern).
__device__ __forceinline__ void copy_async(void* smem, const void* gmem, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
}
// 4, 8 or 16 bytes global -> shared through L1, zero-filled when !valid: a row's scale
// bytes (cp.async.cg takes 16 only) and x riding the ring (the CTAs of an SM read the same x).
template <int BYTES>
__device__ __forceinline__ void copy_async_l1(void* smem, const void* gmem, bool valid = true) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(dst), "l"(gmem), "n"(BYTES), "r"(valid ? BYTES : 0));
}
__device__ __forceinline__ void commit_async() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void wait_async() {  // all but the N most recent groups have landed
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

template <typename T>
struct Act;

template <>
struct Act<__nv_bfloat16> {
  static constexpr uint32_t kUnbias = 0x7E807E80u;  // 2^126 in both halves
  // nibbles (j, j+4) of q, j = 0 or 1 (the caller shifts q right by 8 for j = 2, 3)
  template <int J>
  __device__ __forceinline__ static uint32_t place(uint32_t q) {
    constexpr uint32_t mask = J == 0 ? 0x000F000Fu : 0x00F000F0u;
    constexpr uint32_t mult = J == 0 ? 0x1040u : 0x104u;  // code << 12 (sign to bit 15) + code << 6
    return (q & mask) * mult & 0x81C081C0u;
  }
  __device__ __forceinline__ static uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;  // fma with -0.0: exact a * b, sm_80 and newer
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
    return d;
  }
  __device__ __forceinline__ static uint32_t pair(float v) {
    __nv_bfloat16 h = __float2bfloat16_rn(v);
    uint32_t bits = *reinterpret_cast<uint16_t*>(&h);
    return bits | (bits << 16);
  }
  __device__ __forceinline__ static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ __forceinline__ static void store(void* base, int64_t index, float v) {
    static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(v);
  }
};

template <>
struct Act<__half> {
  static constexpr uint32_t kUnbias = 0x74007400u;  // 2^14 in both halves
  template <int J>
  __device__ __forceinline__ static uint32_t place(uint32_t q) {
    constexpr uint32_t em = J == 0 ? 0x00070007u : 0x00700070u;
    constexpr uint32_t sign = J == 0 ? 0x00080008u : 0x00800080u;
    constexpr int em_shift = J == 0 ? 9 : 5;  // exponent/mantissa bits to 9..11
    constexpr int sign_shift = J == 0 ? 12 : 8;  // sign to bit 15
    return ((q & em) << em_shift) | ((q & sign) << sign_shift);
  }
  __device__ __forceinline__ static uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
    return d;
  }
  __device__ __forceinline__ static uint32_t pair(float v) {
    __half h = __float2half_rn(v);
    uint32_t bits = *reinterpret_cast<uint16_t*>(&h);
    return bits | (bits << 16);
  }
  __device__ __forceinline__ static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ __forceinline__ static void store(void* base, int64_t index, float v) {
    static_cast<__half*>(base)[index] = __float2half_rn(v);
  }
};

// Block scales of one lane's 32 elements of a chunk, as 16-bit float pairs (s, s) for each
// of its words. NVFP4: two e4m3 bytes (blocks 2c, 2c+1); MXFP4: one E8M0 byte (block c).
//
// bf16 x NVFP4 folds the weights' 2^126 unbias into the scales and the accumulator
// instead: the scale pair is S * 2^kFold (exact: S has 4 significant bits and lies in
// [2^-9, 448]), so one packed multiply gives code * S * 2^(kFold - 126), a normal bf16
// for every code and scale (at least 2^-36), and the fp32 accumulator is multiplied by
// 2^(126 - kFold) at the end. Products with x stay normal fp32 for |x| >= 2^-90.
constexpr int kFold = 100;

template <typename T, int FORMAT>
struct Scales {
  static constexpr bool kOneMultiply = false;
  static constexpr float kResultFactor = 1.0f;
};
template <>
struct Scales<__nv_bfloat16, 0> {
  static constexpr bool kOneMultiply = true;
  static constexpr float kResultFactor = 0x1p26f;  // 2^(126 - kFold)
};

// e4m3 bytes b0, b1 (low two bytes of `bytes`) -> bf16 pair (b0, b1) * 2^-120 (bf16) or
// f16 pair * 2^-8 (fp16): the byte's exponent and mantissa bits dropped into the 16-bit
// float's, subnormals included (both formats' subnormals line up).
template <typename T>
__device__ __forceinline__ uint32_t e4m3_pair_bits(uint32_t bytes) {
  const uint32_t y = prmt(bytes, 0, 0x7170);  // b0 -> bits 0..7, b1 -> bits 16..23
  constexpr int shift = std::is_same<T, __nv_bfloat16>::value ? 4 : 7;
  return ((y & 0x007F007Fu) << shift) | ((y & 0x00800080u) << 8);
}

// A lane's scale bytes of one tile (lane_scales): its blocks of row g in the low half, of
// row g + 8 in the high half (NVFP4: 2 + 2 bytes; MXFP4: 1 + 1). H picks the row.
template <typename T, int FORMAT>
__device__ __forceinline__ void scale_pairs(uint32_t bytes, int h, uint32_t (&pair)[4]) {
  if constexpr (FORMAT == 0) {
    uint32_t s = e4m3_pair_bits<T>(h ? bytes >> 16 : bytes);
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
      s = Act<T>::mul(s, 0x7B807B80u);  // * 2^120: the exact scales
      s = Act<T>::mul(s, 0x71807180u);  // * 2^kFold (2^100)
    } else {
      s = Act<T>::mul(s, 0x5C005C00u);  // * 2^8: the exact scales
    }
    pair[0] = pair[1] = prmt(s, s, 0x1010);
    pair[2] = pair[3] = prmt(s, s, 0x3232);
  } else {
    const uint32_t e = (h ? bytes >> 8 : bytes) & 0xFF;
    const float v = __uint_as_float(e == 0 ? 0x00400000u : (e == 255 ? 0x7FC00000u : e << 23));
    pair[0] = pair[1] = pair[2] = pair[3] = Act<T>::pair(v);
  }
}

// Where a 16-row tile's scale byte of (row, block) sits in its run of 16 * kScaleBytes bytes
// for one chunk. Tiled layout: in lane order, lane (g, c)'s bytes together (its blocks of
// row g, then of row g + 8: one 4- or 2-byte shared load gives a lane all it needs). Rows
// layout (the ring's copy of each row's bytes): row by row.
template <int FORMAT, int TL>
__device__ __forceinline__ int scale_offset(int row, int block) {
  constexpr int kPerLane = chunk_scale_bytes(FORMAT) / 4;  // a lane's blocks per row
  if constexpr (TL) return kPerLane * (2 * (4 * (row & 7) + block / kPerLane) + (row >> 3)) + block % kPerLane;
  else return row * chunk_scale_bytes(FORMAT) + block;
}

// Lane (g, c)'s scale bytes of one tile and chunk, from its run `run` in a ring stage, as
// scale_pairs takes them. The planted off-by-one bug takes each block's
// successor (the chunk's last block keeps its own).
template <int FORMAT, int TL, int PLANT>
__device__ __forceinline__ uint32_t lane_scales(const uint8_t* run, int g, int c) {
  constexpr int kPerLane = chunk_scale_bytes(FORMAT) / 4;
  constexpr int kLast = chunk_scale_bytes(FORMAT) - 1;
  uint32_t bytes = 0;
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int block = PLANT == kScaleOffByOne ? min(kPerLane * c + k + 1, kLast) : kPerLane * c + k;
      bytes |= uint32_t{run[scale_offset<FORMAT, TL>(g + 8 * h, block)]} << (8 * (kPerLane * h + k));
    }
  return bytes;
}

// Lane `lane`'s scale bytes of one tile's run in a ring stage (lane_scales); the tiled
// layout keeps them together: one load.
template <int FORMAT, int TL, int PLANT>
__device__ __forceinline__ uint32_t read_lane_scales(const uint8_t* run, int lane) {
  if constexpr (TL && PLANT != kScaleOffByOne) {
    return chunk_scale_bytes(FORMAT) == 8 ? *reinterpret_cast<const uint32_t*>(run + 4 * lane)
                                          : *reinterpret_cast<const uint16_t*>(run + 2 * lane);
  } else {
    return lane_scales<FORMAT, TL, PLANT>(run, lane >> 2, lane & 3);
  }
}

// The tiled layout's words (cuda_gemm.tiled_layout, PLACED_BITS) keep the codes with their
// bits already where a bf16 pair wants them: pair j holds elements (2j, 2j + 1) of the
// word, its (m, e0, e1, sign) bits at
//   pair 0: (6, 7, 8, 15) and (22, 23, 24, 31)  -- the bf16 positions themselves
//   pair 1: (3, 4, 5, 12) and (19, 20, 21, 28)  -- 3 below them
//   pair 2: (0, 1, 2, 14) and (16, 17, 18, 30)  -- exponent/mantissa 6 below, sign 1 below
//   pair 3: (9, 10, 11, 13) and (25, 26, 27, 29) -- exponent/mantissa 3 above, sign 2 below
// so pair 0 is one AND, pair 1 a shift and an AND, pair 2 an AND, a multiply (two left
// shifts at once: copies at 6 and 1 above, none landing on another) and an AND, pair 3
// two shifts and two logic ops: 10 integer operations per word instead of 13. (Four
// pairs cannot all be shifts of one mask: the bf16 pattern has only 3 disjoint translates
// in 32 bits.) fp16 moves the bf16 exponent/mantissa bits 3 up.
constexpr uint32_t kPlacedPair = 0x81C081C0u;  // bf16 pair: exponent/mantissa 6-8, 22-24; signs 15, 31
template <typename T>
__device__ __forceinline__ void placed_pairs(uint32_t q, uint32_t (&p)[4]) {
  p[0] = q & kPlacedPair;
  p[1] = (q << 3) & kPlacedPair;
  p[2] = (q & 0x40074007u) * 0x42u & kPlacedPair;  // (q << 6) + (q << 1)
  p[3] = ((q >> 3) & 0x01C001C0u) | ((q << 2) & 0x80008000u);
  if constexpr (std::is_same<T, __half>::value) {
#pragma unroll
    for (int j = 0; j < 4; ++j) p[j] = ((p[j] & 0x01C001C0u) << 3) | (p[j] & 0x80008000u);
  }
}

// Four weight pairs of one word, scaled: P_0 .. P_3 of the header (rows layout: nibbles
// (j, j + 4)) or Q_0 .. Q_3 (tiled layout: elements (2j, 2j + 1), bits pre-placed).
template <typename T, int FORMAT, int TL, int PLANT>
__device__ __forceinline__ void decode_word(uint32_t q, uint32_t scale, uint32_t (&p)[4]) {
  if constexpr (TL) {
    placed_pairs<T>(q, p);
    if constexpr (PLANT == kNibbleSwap) {  // each pair's two elements swapped: the odd one decoded as the even
#pragma unroll
      for (int j = 0; j < 4; ++j) p[j] = prmt(p[j], 0, 0x1032);
    }
  } else {
    if constexpr (PLANT == kNibbleSwap) {
      q = ((q & 0x0F0F0F0Fu) << 4) | ((q >> 4) & 0x0F0F0F0Fu);
    }
    const uint32_t q8 = q >> 8;
    p[0] = Act<T>::template place<0>(q);
    p[1] = Act<T>::template place<1>(q);
    p[2] = Act<T>::template place<0>(q8);
    p[3] = Act<T>::template place<1>(q8);
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (!Scales<T, FORMAT>::kOneMultiply) p[j] = Act<T>::mul(p[j], Act<T>::kUnbias);
    p[j] = Act<T>::mul(p[j], scale);
  }
}

// Two accumulator chains per (tile, token tile) where the registers allow (gemm_kernel).
__host__ __device__ constexpr bool two_chains(int r, int mt) { return r * mt <= 8; }

// acc += acc_odd (the two chains' sums, once after the last chunk).
template <int R, int MT, bool TWO_CHAINS = two_chains(R, MT)>
__device__ __forceinline__ void fold_odd_chain(float (&acc)[R][MT][4], const float (&acc_odd)[R][MT][4]) {
  if constexpr (TWO_CHAINS) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int j = 0; j < MT; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[r][j][i] += acc_odd[r][j][i];
  }
}

// One chunk of a warp's R tiles (weights wq, scale bytes as read_lane_scales gives them):
// decoded, scaled and multiplied into acc (even words) and acc_odd (odd words, when
// TWO_CHAINS). load_x(j, w): token tile j's x operands of word w (tiled: as loaded).
template <typename T, int FORMAT, int MT, int R, int TL, int PLANT, bool TWO_CHAINS = two_chains(R, MT), typename LoadX>
__device__ __forceinline__ void chunk_mmas(float (&acc)[R][MT][4], float (&acc_odd)[R][MT][4], const uint4 (&wq)[R][2],
                                           const uint32_t (&bytes)[R], const LoadX& load_x) {
  constexpr bool kTwoChains = TWO_CHAINS;
  if constexpr (PLANT == kNoMath) {  // keep the ring's reads, skip decode and MMAs
    uint32_t bits = 0;
#pragma unroll
    for (int r = 0; r < R; ++r) bits ^= wq[r][0].x ^ wq[r][0].y ^ wq[r][0].z ^ wq[r][0].w ^ wq[r][1].x ^ wq[r][1].y ^
                                        wq[r][1].z ^ wq[r][1].w ^ bytes[r];
    acc[0][0][0] += __uint_as_float(bits & 0x007FFFFFu);
  } else {
    uint32_t scale[R][2][4];  // [tile][row g, g + 8][word]
    if constexpr (PLANT != kNoDecode) {
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) scale_pairs<T, FORMAT>(bytes[r], h, scale[r][h]);
    }
    uint32_t sink = 0;  // kNoMma: every MMA operand folded in, so none is dead code
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint4 bx[MT];  // [token tile]: (step 0: b0, b1; step 1: b0, b1)
#pragma unroll
      for (int j = 0; j < MT; ++j) bx[j] = PLANT == kNoXLoads ? wq[0][j & 1] : load_x(j, w);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        uint32_t lo[4], hi[4];  // rows g and g + 8
        const uint4& q0 = wq[r][0];
        const uint4& q1 = wq[r][1];
        const uint32_t word0 = w == 0 ? q0.x : w == 1 ? q0.y : w == 2 ? q0.z : q0.w;
        const uint32_t word1 = w == 0 ? q1.x : w == 1 ? q1.y : w == 2 ? q1.z : q1.w;
        if constexpr (PLANT == kNoDecode) {
#pragma unroll
          for (int i = 0; i < 4; ++i) lo[i] = word0, hi[i] = word1;
        } else {
          decode_word<T, FORMAT, TL, PLANT>(word0, scale[r][0][w], lo);
          decode_word<T, FORMAT, TL, PLANT>(word1, scale[r][1][w], hi);
        }
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          const uint32_t a[4] = {lo[2 * t], hi[2 * t], lo[2 * t + 1], hi[2 * t + 1]};
#pragma unroll
          for (int j = 0; j < MT; ++j) {
            const uint32_t b0 = t == 0 ? bx[j].x : bx[j].z;
            const uint32_t b1 = t == 0 ? bx[j].y : bx[j].w;
            if constexpr (PLANT == kNoMma) {
              sink ^= (j == 0 ? a[0] ^ a[1] ^ a[2] ^ a[3] : 0u) ^ b0 ^ b1;
            } else {
              Act<T>::mma(kTwoChains && (w & 1) ? acc_odd[r][j] : acc[r][j], a, b0, b1);
            }
          }
        }
      }
    }
    if constexpr (PLANT == kNoMma) acc[0][0][0] += __uint_as_float(sink & 0x007FFFFFu);
  }
}

// Routed rows (GemmParams): row blockIdx.z's expert matrix, x row and y row, its partials
// and counters; returns the weight its result is multiplied by (1 when not routed: exact).
template <typename T>
__device__ __forceinline__ float route_params(GemmParams& p) {
  float row_weight = 1.0f;
  if (p.row_expert != nullptr) {  // routed row blockIdx.z (GemmParams): its expert's matrix, x row and y row
    const int r = blockIdx.z;
    const int e = min(max(__ldg(p.row_expert + r), 0), p.experts - 1);  // ids outside [0, E) must not read outside
    p.packed += e * p.expert_packed_stride;
    p.scales += e * p.expert_scale_stride;
    p.global_scale += e;
    p.x = static_cast<const T*>(p.x) + static_cast<int64_t>(r / p.x_div) * p.x_stride;
    p.y = p.y_fp32 ? static_cast<void*>(static_cast<float*>(p.y) + r * p.y_stride)
                   : static_cast<void*>(static_cast<T*>(p.y) + r * p.y_stride);
    if (p.split_k > 1) {
      p.partials += static_cast<int64_t>(r) * p.split_k * p.N;
      p.counters += static_cast<int64_t>(r) * gridDim.x;
    }
    if (p.row_weight != nullptr) row_weight = __ldg(p.row_weight + r);
  }
  return row_weight;
}

// The CTA's results: each storer thread's accumulators (rows row0 + 16 r + g (+ 8),
// tokens token0 + 8 j + 2 c (+ 1)) times the global scale, rounded once into y; with
// split-K as fp32 partials, which the last CTA of the tile to arrive sums in split order.
// Every thread of the CTA calls it (its barriers).
template <typename T, int FORMAT, int R, int MT>
__device__ __forceinline__ void finish_tiles(const GemmParams& p, float (&acc)[R][MT][4], int row0, int token0,
                                             bool storer, float row_weight) {
  const int g = (threadIdx.x & 31) >> 2;
  const int c = threadIdx.x & 3;
  const float gs = __ldg(p.global_scale) * Scales<T, FORMAT>::kResultFactor;
  auto store_y = [&](int64_t index, float v) {
    v *= row_weight;
    if (p.y_fp32) static_cast<float*>(p.y)[index] = v;
    else Act<T>::store(p.y, index, v);
  };
  // Output e of this thread's R * MT * 4 is element i = e % 4 of tile (r, j) = (e / (4 MT),
  // e / 4 % MT): row g + 8 * (i / 2), token 2c + i % 2 of the tile; false outside y.
  constexpr int kOutputs = R * MT * 4;
  auto output_at = [&](int e, int& row, int& token) {
    const int i = e % 4;
    row = row0 + (e / (4 * MT)) * 16 + g + 8 * (i / 2);
    token = token0 + 8 * (e / 4 % MT) + 2 * c + (i % 2);
    return row < p.N && token < p.M;
  };
  // `use(row, token, value)` for each of this thread's values (acc's shape) inside y
  auto each_output = [&](auto& values, auto&& use) {
    float* const flat = &values[0][0][0];
#pragma unroll
    for (int e = 0; e < kOutputs; ++e) {
      int row, token;
      if (output_at(e, row, token)) use(row, token, flat[e]);
    }
  };
  if (p.split_k == 1) {
    if (storer) each_output(acc, [&](int row, int token, float v) { store_y(token * p.y_stride + row, v * gs); });
    return;
  }
  const int64_t plane = static_cast<int64_t>(p.M) * p.N;
  if (storer) {
    each_output(acc, [&](int row, int token, float v) {
      __stcg(p.partials + blockIdx.y * plane + static_cast<int64_t>(token) * p.N + row, v);
    });
  }
  // Arrival: the barrier orders every thread's partials before thread 0's fence, which
  // makes them visible device-wide (fence cumulativity) before its atomic; one fence per
  // CTA instead of one per thread. The last CTA's thread 0 fences again after its atomic,
  // so the partials of all splits are visible to the whole CTA after the next barrier.
  __syncthreads();
  __shared__ int is_last;
  const int tile = blockIdx.x;  // (counters of a routed row start at its own offset)
  if (threadIdx.x == 0) {
    __threadfence();
    is_last = atomicAdd(p.counters + tile, 1) == p.split_k - 1;
    if (is_last) __threadfence();
  }
  __syncthreads();
  if (!is_last || !storer) return;
  // Up to 16 of the thread's loads in flight at once (16 outputs of one split or 8 of two;
  // 4 of two where R * MT = 1, whose kernels have 64 registers and spilled with 16): one L2
  // round trip per group, not one per load as when each output summed its splits in turn
  // (16x512x4096 at split 2: 6.6 us against 3.0 at split 1; kernels/w4a16/NOTES.md). The
  // sum is in split order, starting from split 0's value itself (-0 stays -0), into acc.
  constexpr int kGroup = kOutputs < 16 ? kOutputs : 16;  // outputs loaded together
  constexpr int kSplitsAtOnce = kOutputs == 4 ? 2 : 16 / kGroup;
  float* const total = &acc[0][0][0];
#pragma unroll
  for (int first = 0; first < kOutputs; first += kGroup) {
    for (int s0 = 0; s0 < p.split_k; s0 += kSplitsAtOnce) {
      float v[kSplitsAtOnce][kGroup];
#pragma unroll
      for (int u = 0; u < kSplitsAtOnce; ++u)
#pragma unroll
        for (int e = 0; e < kGroup; ++e) {
          int row, token;
          const bool inside = s0 + u < p.split_k && output_at(first + e, row, token);
          v[u][e] = inside ? __ldcg(p.partials + (s0 + u) * plane + static_cast<int64_t>(token) * p.N + row) : 0.0f;
        }
#pragma unroll
      for (int u = 0; u < kSplitsAtOnce; ++u)
#pragma unroll
        for (int e = 0; e < kGroup; ++e)
          if (s0 + u < p.split_k) total[first + e] = s0 + u == 0 ? v[u][e] : total[first + e] + v[u][e];
    }
  }
  each_output(acc, [&](int row, int token, float sum) { store_y(token * p.y_stride + row, sum * gs); });
  if (threadIdx.x == 0) p.counters[tile] = 0;  // ready for the next call
}

template <typename T, int FORMAT, int MT, int R, int S, int KW, int TL, int XR, int PLANT>
__global__ void __launch_bounds__(kWarps * 32, (MT == 1 && R == 1 && S == 4) ? 4 : 1) gemm_kernel(const GemmParams params) {
  GemmParams p = params;
  const float row_weight = route_params<T>(p);  // multiplies the result (exact when 1)
  constexpr int kScaleBytes = chunk_scale_bytes(FORMAT);  // per row and chunk
  constexpr int kStageBytes = R * ring_tile_bytes(FORMAT);  // weights and scales of a warp's ring stage
  static_assert(S >= 2, "the ring needs two stages at least");
  static_assert(kWarps % KW == 0, "the CTA's warps split into KW warps along K per row group");
  constexpr int kRowWarps = kWarps / KW;  // row groups per CTA
  // gemm_shared_bytes (w4a16_gemm.h): the warps' rings, then x. 128-byte aligned: the static
  // `is_last` below comes first, and a ring 16 bytes off the 128-byte grid of its global
  // source made ncu count 2x the L2 sectors and 3x the shared-memory wavefronts per weight copy
  extern __shared__ __align__(128) uint4 smem[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int kw = warp % KW;  // this warp's share of the CTA's K range: chunks kw, kw + KW, ...
  const int row_warp = warp / KW;
  const int g = lane >> 2;
  const int c = lane & 3;
  // token groups vary fastest along x, so the CTAs reading one weight tile for different
  // tokens run together and share its bytes through L2
  const int groups = token_groups(p.M, MT);
  const int row0 = (blockIdx.x / groups) * (kRowWarps * R * 16) + row_warp * R * 16;
  const int token0 = (blockIdx.x % groups) * MT * 8;
  const int tokens = min(8 * MT, p.M - token0);
  // this warp's ring: stage s holds [r][h][lane] 16-byte weight pieces, then each tile's run
  // of scale bytes (scale_offset)
  uint8_t* const ring = reinterpret_cast<uint8_t*>(smem) + warp * S * kStageBytes;
  // XR: the CTA's x ring of S stages, each the x of the KW chunks its warps take at one step,
  // [part kw][token (x_tokens)][x_ring_token_bytes]; else the CTA's x over its K range,
  // staged up front
  uint8_t* const x_smem = reinterpret_cast<uint8_t*>(smem) + kWarps * S * kStageBytes;
  const int x_tokens = min(p.M, 8 * MT);  // the layout's tokens (a last group may have fewer)
  const int x_stage_bytes = XR ? KW * x_tokens * x_ring_token_bytes() : 0;

  const int chunks = (p.K + kChunk - 1) / kChunk;  // the last one may be partial (K % 32 == 0)
  const int per_split = (chunks + p.split_k - 1) / p.split_k;
  const int chunk_begin = blockIdx.y * per_split;
  const int chunk_end = min(chunks, chunk_begin + per_split);
  // this warp's steps: chunk chunk_begin + kw + n * KW at step n (the KW warps of a row
  // group read neighbouring chunks of the same rows at the same time)
  const int steps = max(chunk_end - chunk_begin - kw + KW - 1, 0) / KW;
  const int cta_steps = max(chunk_end - chunk_begin + KW - 1, 0) / KW;  // warp kw = 0's, the most
  auto chunk_at = [&](int n) { return chunk_begin + kw + n * KW; };

  // rows past the end re-read the last one (no masks in the loop; never stored)
  const uint8_t* w_row[R][2];  // rows layout: this lane's 16 bytes of rows g and g + 8 of each tile
  const uint8_t* s_row[R];  // rows layout: lanes 0..15 copy the scale bytes of row `lane` of each tile
  const uint8_t* w_tile[R];  // tiled layout: each tile's pieces
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if constexpr (TL) {
      w_tile[r] = p.packed + static_cast<int64_t>(min(row0 / 16 + r, (p.N - 1) / 16)) * p.packed_stride;
    } else {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = min(row0 + r * 16 + g + 8 * h, p.N - 1);
        w_row[r][h] = p.packed + row * p.packed_stride + 16 * c;
      }
      s_row[r] = p.scales + min(row0 + r * 16 + (lane & 15), p.N - 1) * p.scale_stride;
    }
  }

  // x of this CTA's token t at element k, or at element 0 for k past K (the copies of such
  // pieces are zero-filled or skipped; the address must stay inside x)
  auto x_at = [&](int t, int k) {
    return static_cast<const T*>(p.x) + static_cast<int64_t>(token0 + t) * p.x_stride + (k < p.K ? k : 0);
  };

  // Two accumulator chains per (tile, token tile): the MMAs of even words into acc, of odd
  // words into acc_odd, so a chunk's 8 MMAs per accumulator are two dependent chains of 4
  // (summed once at the end). H100, session 10: 1x4096x14336 NVFP4 14.4-14.7 -> 13.9 us,
  // 16x4096x14336 19.4-19.7 -> 19.1. (Session 9 split by k16 step within a word instead: no
  // gain.) Not where the registers would spill (R * MT = 16).
  float acc[R][MT][4];
  float acc_odd[R][MT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][j][i] = acc_odd[r][j][i] = 0.0f;

  // Tiled layout: the copies of successive steps read successive chunks of each tile, so a
  // running pointer per tile (this lane's 16 bytes of the next chunk to copy) replaces the
  // 64-bit address arithmetic of chunk * chunk_stride at every step; `advance` moves it on.
  const uint8_t* w_next[R] = {};
  const int64_t w_step = static_cast<int64_t>(KW) * p.chunk_stride;
  if constexpr (TL) {
#pragma unroll
    for (int r = 0; r < R; ++r) w_next[r] = w_tile[r] + static_cast<int64_t>(chunk_at(0)) * p.chunk_stride + lane * 16;
  }
  auto advance = [&]() {
#pragma unroll
    for (int r = 0; r < R; ++r) w_next[r] += w_step;
  };
  // The weights of `chunk` into ring stage `stage` (zeros for a lane segment past K, in a
  // partial last chunk; the tiled layout holds those zeros). Each lane copies, and later
  // reads, only its own pieces.
  auto copy_weights = [&](int stage, int chunk) {
    const bool valid = chunk * kChunk + 32 * c + 32 <= p.K;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint8_t* const to = ring + stage * kStageBytes + ((r * 2 + h) * 32 + lane) * 16;
        if constexpr (TL) copy_async(to, w_next[r] + h * 32 * 16, true);
        else copy_async(to, w_row[r][h] + (valid ? chunk * (kChunk / 2) : 0), valid);
      }
  };
  // The scale bytes of `chunk` into stage `stage` (lanes read them back after a
  // __syncwarp). Rows layout: row i of a tile by lane i; the host pads every row to whole
  // chunks. Tiled layout: the tile's 16 rows of scale bytes are one run of 128 (NVFP4) or
  // 64 (MXFP4) bytes after its weights, 16 bytes per lane.
  auto copy_scales = [&](int stage, int chunk) {
    uint8_t* const to = ring + stage * kStageBytes + R * kWeightTileBytes;
    if constexpr (TL) {
      if (lane < kScaleBytes) {
#pragma unroll
        for (int r = 0; r < R; ++r)
          copy_async(to + r * 16 * kScaleBytes + lane * 16, w_next[r] + kWeightTileBytes, true);
      }
    } else if (lane < 16) {
#pragma unroll
      for (int r = 0; r < R; ++r) copy_async_l1<kScaleBytes>(to + (r * 16 + lane) * kScaleBytes, s_row[r] + chunk * kScaleBytes);
    }
  };
  // XR: the tokens' x over step n's chunks (one per part kw) into x ring stage `stage`, split
  // over the CTA's threads: 8-element pieces at [part][token] + (w, c) as in the staged
  // slice (w4a16_gemm.h: x_ring_token_bytes), zeros past K.
  // A thread copies the same 8-element group of every chunk, for tokens x_token0, + kXTokenStep, ...
  // (the CTA's kWarps * 32 threads over 16 groups per token): its source and destination offsets
  // are set once here, and a step adds only the chunk.
  constexpr int kXTokenStep = kWarps * 32 / 16;
  const int x_piece = threadIdx.x & 15;  // elements 32c + 8w: lane c = group / 4, word w = group % 4
  const int x_token0 = threadIdx.x >> 4;
  const T* const x_src = static_cast<const T*>(p.x) + static_cast<int64_t>(token0 + x_token0) * p.x_stride + 8 * x_piece;
  const int64_t x_src_step = kXTokenStep * p.x_stride;  // elements between a thread's tokens
  const int x_dst = x_token0 * x_ring_token_bytes() + (x_piece & 3) * 64 + (x_piece >> 2) * 16;
  auto copy_x = [&](int stage, int n) {
#pragma unroll 1
    for (int part = 0; part < KW; ++part) {  // (unrolled, KW = 4 spills under the 64-register cap)
      const int chunk = chunk_begin + part + n * KW;
      if (chunk >= chunk_end) break;
      uint8_t* to = x_smem + stage * x_stage_bytes + part * x_tokens * x_ring_token_bytes() + x_dst;
      const bool valid = chunk * kChunk + 8 * x_piece < p.K;
      const T* from = x_src + (valid ? chunk * kChunk : -8 * x_piece);  // past K: element 0 of the row (zero-filled)
      for (int t = x_token0; t < tokens; t += kXTokenStep) {
        copy_async_l1<16>(to, from, valid);
        to += kXTokenStep * x_ring_token_bytes();
        from += x_src_step;
      }
    }
  };
  // A lane's scale bytes of ring stage `stage` (lane_scales): its blocks of rows g and g + 8
  // of each tile; the tiled layout's are one load.
  auto read_scales = [&](int stage, uint32_t (&bytes)[R]) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      bytes[r] = read_lane_scales<FORMAT, TL, PLANT>(ring + stage * kStageBytes + R * kWeightTileBytes + r * 16 * kScaleBytes, lane);
    }
  };

  // Without XR, the CTA's tokens over its K range in shared memory at [token][chunk][word w]
  // [lane c], 16 bytes (8 elements) each, so one 16-byte shared load gives a lane its x of
  // word w and the 4 lanes of a row read 64 contiguous bytes. Elements past K are zero (the
  // weights there are zero too, and x could be anything). Rows layout: stored as the MMA B
  // operands (e0 e4, e1 e5, e2 e6, e3 e7) through registers, after the first weights are on
  // their way. Tiled layout: x as it is, by cp.async in the ring's first group (no register
  // round trip for the CTA to wait on before its first chunk).
  const int row_bytes = x_row_bytes(per_split);
  const int my_chunks = max(chunk_end - chunk_begin, 0);
  const int x_groups = XR ? 0 : tokens * my_chunks * 16;
  // 8-element group i of the slice: its token, its place in shared memory, its element k
  auto x_group = [&](int i, int& at, int& t, int& k) {
    t = i / (my_chunks * 16);
    const int rest = i - t * my_chunks * 16;
    const int q = rest >> 4;  // chunk within the slice
    const int group = rest & 15;  // 8-element group within the chunk: lane c = group / 4, word w = group % 4
    k = (chunk_begin + q) * kChunk + 8 * group;
    at = t * row_bytes + q * 256 + (group & 3) * 64 + (group >> 2) * 16;
  };

  // The ring: step n's chunk (weights and scales; XR: and the CTA's x) is copied into
  // stage n % S, one commit group per step (empty groups past the end keep the count
  // uniform), S - 1 steps before it is used. At step n a lane first issues its weight
  // copies of step n + S - 1 (into the stage it read at step n - 1), waits for step n,
  // then meets the warp at a __syncwarp (XR: the CTA at a __syncthreads), which makes
  // every lane's copies of step n visible and orders all lanes' reads of step n - 1's
  // scales (and x) before the copies of step n + S - 1 into that stage.
#pragma unroll
  for (int i = 0; i < S - 1; ++i) {
    if (i < steps) {
      copy_weights(i, chunk_at(i));
      copy_scales(i, chunk_at(i));
      advance();
    }
    if constexpr (XR) {
      if (i < cta_steps) copy_x(i, i);
    }
    if constexpr (TL && !XR) {
      if (i == 0) {
        for (int n = threadIdx.x; n < x_groups; n += kWarps * 32) {
          int at, t, k;
          x_group(n, at, t, k);
          copy_async_l1<16>(x_smem + at, x_at(t, k), k < p.K);
        }
      }
    }
    commit_async();
  }

  if constexpr (!TL) {  // rows layout: four loads per thread in flight before the first store
    constexpr int kXBatch = 4;
    for (int i0 = threadIdx.x; i0 < x_groups; i0 += kXBatch * kWarps * 32) {
      uint4 v[kXBatch];
      int at[kXBatch];
#pragma unroll
      for (int u = 0; u < kXBatch; ++u) {
        const int i = i0 + u * kWarps * 32;
        int t, k;
        x_group(i, at[u], t, k);
        v[u] = make_uint4(0, 0, 0, 0);
        if (i >= x_groups) at[u] = -1;
        if (i < x_groups && k < p.K) v[u] = load_x(x_at(t, k));
      }
#pragma unroll
      for (int u = 0; u < kXBatch; ++u) {
        if (at[u] >= 0) {
          *reinterpret_cast<uint4*>(x_smem + at[u]) = make_uint4(prmt(v[u].x, v[u].z, 0x5410), prmt(v[u].x, v[u].z, 0x7632),
                                                                 prmt(v[u].y, v[u].w, 0x5410), prmt(v[u].y, v[u].w, 0x7632));
        }
      }
    }
  }
  if constexpr (TL && !XR) wait_async<S - 2>();  // the first group (the first weights and x) has landed
  if constexpr (!XR) __syncthreads();
  // lanes of tokens past the end read the last token (their results are never stored)
  const uint8_t* x_lane[MT];
#pragma unroll
  for (int j = 0; j < MT; ++j) {
    const int token = min(8 * j + g, tokens - 1);
    x_lane[j] = XR ? x_smem + (kw * x_tokens + token) * x_ring_token_bytes() + c * 16 : x_smem + token * row_bytes + c * 16;
  }

  // x's MMA operands of word w: from x ring stage `stage` (XR), else from the staged slice at
  // chunk q of the CTA's range (the rows layout's slice is pre-permuted there)
  auto load_bx = [&](int j, int stage, int q, int w) -> uint4 {
    if constexpr (XR) {
      return *reinterpret_cast<const uint4*>(x_lane[j] + stage * x_stage_bytes + w * 64);  // (tiled: no permute)
    } else {
      return *reinterpret_cast<const uint4*>(x_lane[j] + q * 256 + w * 64);
    }
  };

  auto compute = [&](const uint4 (&wq)[R][2], const uint32_t (&bytes)[R], int stage, int q) {
    chunk_mmas<T, FORMAT, MT, R, TL, PLANT>(acc, acc_odd, wq, bytes, [&](int j, int w) { return load_bx(j, stage, q, w); });
  };

  // XR: every warp runs the CTA's steps (the barrier), computing its own only
  const int loop_steps = XR ? cta_steps : steps;
  for (int base = 0; base < loop_steps; base += S) {
#pragma unroll
    for (int i = 0; i < S; ++i) {
      const int step = base + i;
      if (step < loop_steps) {
        constexpr int kAhead = S - 1;
        const bool ahead = step + kAhead < steps;
        if (ahead) copy_weights((i + kAhead) % S, chunk_at(step + kAhead));
        wait_async<S - 2>();  // step's group has landed (the copies just issued are not committed yet)
        if constexpr (XR) {
          __syncthreads();
        } else {
          __syncwarp();
        }
        if (ahead) {
          copy_scales((i + kAhead) % S, chunk_at(step + kAhead));
          advance();
        }
        if constexpr (XR) {
          if (step + kAhead < cta_steps) copy_x((i + kAhead) % S, step + kAhead);
        }
        commit_async();
        if (step >= steps) continue;
        uint4 wq[R][2];
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h) wq[r][h] = reinterpret_cast<const uint4*>(ring + i * kStageBytes)[(r * 2 + h) * 32 + lane];
        uint32_t scale_bytes[R];
        read_scales(i, scale_bytes);
        compute(wq, scale_bytes, i, chunk_at(step) - chunk_begin);
      }
    }
  }
  wait_async<0>();  // no copy may be in flight when the CTA exits (nor when the ring is reused below)
  fold_odd_chain(acc, acc_odd);

  // The KW warps of a row group summed in warp order through shared memory (the rings are
  // free now): warp kw > 0 leaves its sums, the group's first warp adds them and stores.
  const bool storer = kw == 0;
  if constexpr (KW > 1) {
    constexpr int kPerWarp = R * MT * 4 * 32;
    static_assert(kPerWarp * 4 <= S * kStageBytes, "a warp's sums fit in its ring");
    float* const parked = reinterpret_cast<float*>(smem);
    __syncthreads();  // every warp is past its ring and x
    if (!storer) {
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < MT; ++j)
#pragma unroll
          for (int i = 0; i < 4; ++i) parked[warp * kPerWarp + ((r * MT + j) * 4 + i) * 32 + lane] = acc[r][j][i];
    }
    __syncthreads();
    if (storer) {
#pragma unroll
      for (int s = 1; s < KW; ++s)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int j = 0; j < MT; ++j)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[r][j][i] += parked[(warp + s) * kPerWarp + ((r * MT + j) * 4 + i) * 32 + lane];
    }
  }

  finish_tiles<T, FORMAT, R, MT>(p, acc, row0, token0, storer, row_weight);
}

// Lets `Kernel` launch with `bytes` of dynamic shared memory: above the default limit an
// opt-in, per device, made once for the largest size asked so far. The default limit holds
// static and dynamic shared memory together, so the opt-in starts kStaticSharedBound below
// it (the kernels' static shared memory, barriers and flags, is far less): the producer
// kernel at 8 tokens, MXFP4, 4 stages, two warps per tile asks exactly 48 KiB dynamic,
// which failed to launch without one.
template <auto Kernel>
cudaError_t allow_shared_bytes(int bytes) {
  if (bytes + kStaticSharedBound <= kDefaultSharedBytes) return cudaSuccess;
  constexpr int kDevices = 64;
  static int opted[kDevices] = {};  // the largest size opted in so far on each device
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device < kDevices && bytes <= opted[device]) return cudaSuccess;
  err = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err == cudaSuccess && device < kDevices) opted[device] = bytes;
  return err;
}

// The grid over one problem: CTAs of `rows` weight rows times token groups along x (the
// groups of one weight tile next to each other), the split of K along y, routed rows along z.
inline dim3 gemm_grid(const GemmParams& p, int rows) {
  const int row_ctas = (p.N + rows - 1) / rows;
  return dim3(row_ctas * token_groups(p.M, p.token_tiles), p.split_k, p.row_expert != nullptr ? p.routed_rows : 1);
}

// ---------------------------------------------------------------------------------------
// The producer-warp kernel (GemmParams via launch_producer; tiled layout, up to 64 tokens per
// token group): kWarps consumer warps, one 16-row tile each, all on the same chunk at each step
// (or 2 kWarps, two per tile taking its even and odd steps: KW = 2), and kProducerWarps
// producer warps that fill a CTA-wide ring of S stages, each holding the CTA's tiles of one
// chunk (weights and scales: one bulk copy when the pieces are chunk-major, else one per
// tile) and its tokens' x of that chunk (16-byte cp.async pieces shared by the producer
// threads, the x ring's layout). Full and empty mbarriers hand the stages over, so the
// consumers issue no copies, no address arithmetic for them and no CTA barrier: a step is a
// wait, the shared loads, an arrive and the math. H100, session 13, 16x4096x14336 NVFP4:
// 17.6 us against 18.9 for the x ring (kernels/w4a16/NOTES.md); with one producer warp 30 us
// (its 8 x copies per step and thread had about one step in flight), with a bulk copy per
// tile 38 us (a bulk copy costs per copy, not per byte). Session 14, KW = 2 and 8 stages:
// 16.3 us. Session 16, 32 and 64 tokens per CTA (MT 4, 8) instead of token groups of 16:
// 64x4096x14336 34.7 us against 57.3 (each weight decoded once, and 112 CTAs instead of 448).
// Session 17, x by one bulk tensor copy per stage (XT, below; one producer warp): 28.5 us
// there, but slower at 16 tokens (16x4096x14336 17.0 against 16.6). XT at 32 tokens with x
// in registers and two chains (138 registers) lost its gain (64x14336x4096 35.0 -> 35.8).
// Session 18, tried on branches and not kept: the weights multicast to a cluster of two token
// groups (bit-equal, slower: 64x4096x4096 15.7 -> 18.2 us, no-math 10.4 -> 10.9) and 7 tiles
// per CTA to fill 128 SMs at N = 14336 (no faster: 16.2 -> 16.1).

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(count));
}
// Blocks until the phase of parity `parity` of `bar` has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}
// The current phase of `bar` also waits for `bytes` more bytes of bulk copies.
__device__ __forceinline__ void mbarrier_expect_bytes(uint64_t* bar, int bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes) : "memory");
}
// One arrival on `bar` (counted in its expected arrivals) once every cp.async this thread
// issued before has landed.
__device__ __forceinline__ void mbarrier_arrive_after_copies(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(shared_address(bar)) : "memory");
}
// `bytes` (a multiple of 16, both ends 16-byte aligned) global -> shared by the bulk-copy
// engine, counted on `bar`'s transaction bytes.
__device__ __forceinline__ void bulk_copy(void* smem, const void* gmem, int bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(shared_address(smem)), "l"(gmem), "r"(bytes), "r"(shared_address(bar))
               : "memory");
}

// One arrival on `bar` that also announces `bytes` more bytes of bulk copies for its phase.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint64_t* bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes) : "memory");
}
// The box of `map` at (inner, outer) -> shared memory by the bulk tensor copy engine, counted
// on `bar`'s transaction bytes (elements outside the tensor read as zeros).
__device__ __forceinline__ void tensor_copy_2d(void* smem, const XTensorMap* map, int inner, int outer, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(shared_address(smem)), "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer),
      "r"(shared_address(bar))
      : "memory");
}

// x [M, K] (rows x_stride apart) as a tensor map for the producer kernel's x_tensor: boxes of
// `rows` tokens by kXTensorBoxElements elements (w4a16_gemm.h). Needs x 16-byte aligned and
// its rows a multiple of 16 bytes apart (else cudaErrorInvalidValue).
template <typename T>
cudaError_t encode_x_tensor_map(const GemmParams& p, int rows, XTensorMap* map) {
  static_assert(sizeof(XTensorMap) == sizeof(CUtensorMap) && alignof(XTensorMap) >= alignof(CUtensorMap),
                "XTensorMap holds a CUtensorMap");
  static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  if (encode == nullptr) {
    void* found = nullptr;
    cudaDriverEntryPointQueryResult status = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t err =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &found, 12000, cudaEnableDefault, &status);
    if (err != cudaSuccess) return err;
    if (status != cudaDriverEntryPointSuccess || found == nullptr) return cudaErrorNotSupported;
    encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(found);
  }
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(p.K), static_cast<cuuint64_t>(p.M)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(p.x_stride) * sizeof(T)};
  const cuuint32_t box[2] = {kXTensorBoxElements, static_cast<cuuint32_t>(rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult result = encode(
      reinterpret_cast<CUtensorMap*>(map),
      std::is_same<T, __nv_bfloat16>::value ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
      const_cast<void*>(p.x), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return result == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

// KW computing warps per tile (1 or 2): with 2, warp w and w + kWarps take tile w's even and
// odd steps (16 computing warps, 4 per scheduler, to hide the math's latency) and add their
// sums through shared memory at the end (producer_shared_bytes).
//
// XT (x_tensor): x arrives by one bulk tensor copy per stage instead (x_map), issued with the
// weights' by a single producer warp; its rows are in K order, kXTensorBoxElements * 2 bytes
// apart, and lanes c = 2, 3 take their four words in the order 2, 3, 0, 1 (x, weights and
// NVFP4 block scales alike), which keeps each 8-lane phase of the 16-byte x loads on 8
// different bank groups. A permutation of K per lane column c leaves the product unchanged.
template <typename T, int FORMAT, int MT, int S, int KW, int XT, int PLANT>
__global__ void __launch_bounds__((kWarps * KW + producer_warps(XT)) * 32, 1)
    gemm_producer_kernel(const GemmParams params, const __grid_constant__ XTensorMap x_map) {
  static_assert((KW == 1 || KW == 2) && S % KW == 0, "one or two computing warps per tile, each with its own stages");
  constexpr int kProducerWarps = producer_warps(XT);
  constexpr int kXTokenBytes = producer_x_token_bytes(XT);
  // Up to 16 tokens a warp loads its x of a stage into registers (8 uint4) and frees the
  // stage before its math, with two accumulator chains; 32 and 64 tokens (16 and 32 uint4)
  // read x during the math, with one chain (their MT MMAs per step are independent already).
  constexpr bool kXInRegisters = MT <= 2;
  constexpr bool kTwoChains = MT <= 2;
  GemmParams p = params;
  const float row_weight = route_params<T>(p);
  constexpr int kTileBytes = ring_tile_bytes(FORMAT);
  extern __shared__ __align__(128) uint4 smem[];
  __shared__ __align__(8) uint64_t full[S];   // stage s holds step n's chunk (n % S == s)
  __shared__ __align__(8) uint64_t empty[S];  // every consumer warp of stage s has read it
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;  // kWarps * KW and up: the producers
  const int tile_warp = warp % kWarps;  // a computing warp's tile in the CTA
  const int half = warp / kWarps;  // a computing warp's steps: those with n % KW == half
  const int g = lane >> 2;
  const int c = lane & 3;
  const int groups = token_groups(p.M, MT);
  const int tile0 = (blockIdx.x / groups) * kWarps;  // the CTA's first 16-row tile
  const int token0 = (blockIdx.x % groups) * MT * 8;
  const int tokens = min(8 * MT, p.M - token0);
  const int cta_tiles = min(kWarps, (p.N + 15) / 16 - tile0);  // warps past the last tile idle
  constexpr int kStageBytes = producer_stage_bytes(FORMAT, MT, XT);
  uint8_t* const ring = reinterpret_cast<uint8_t*>(smem);  // stage s: [tile][kTileBytes], then x [token][kXTokenBytes]

  const int chunks = (p.K + kChunk - 1) / kChunk;
  const int per_split = (chunks + p.split_k - 1) / p.split_k;
  const int chunk_begin = blockIdx.y * per_split;
  const int steps = max(min(chunks, chunk_begin + per_split) - chunk_begin, 0);

  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < S; ++s) {
      // the producer threads, each once its x copies have landed (XT: one, announcing all bytes)
      mbarrier_init(&full[s], XT ? 1 : kProducerWarps * 32);
      mbarrier_init(&empty[s], cta_tiles);  // stage s's readers: one warp per tile
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  float acc[1][MT][4];
  float acc_odd[1][MT][4];
#pragma unroll
  for (int j = 0; j < MT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[0][j][i] = acc_odd[0][j][i] = 0.0f;

  if (warp >= kWarps * KW) {
    const int pt = threadIdx.x - kWarps * KW * 32;  // producer thread
    // Chunk-major pieces: thread 0 copies the CTA's tiles of each chunk at once; else thread
    // t < cta_tiles copies tile t's piece. The threads share the x pieces: piece
    // i = pt + 128 u is token i / 16's 8-element group i % 16 (elements 32c + 8w: c = group / 4,
    // w = group % 4, at w * 64 + c * 16 of the token's row in the stage). Rows of tokens past
    // the group's end are not copied (their lanes read the last token).
    constexpr int kPieces = (MT * 8 * 16 + kProducerWarps * 32 - 1) / (kProducerWarps * 32);  // per thread
    // each piece's x source at chunk 0 and place in a stage, set once (a step adds the chunk)
    const T* x_from[kPieces];
    int x_to[kPieces];
    int x_group[kPieces];
#pragma unroll
    for (int u = 0; u < kPieces; ++u) {
      const int piece = pt + kProducerWarps * 32 * u;
      const int t = min(piece >> 4, tokens - 1);  // (pieces of tokens past the end are not copied)
      x_group[u] = (piece >> 4) < tokens ? piece & 15 : -1;
      x_from[u] = static_cast<const T*>(p.x) + static_cast<int64_t>(token0 + t) * p.x_stride + 8 * (piece & 15);
      x_to[u] = kWarps * kTileBytes + t * x_ring_token_bytes() + (piece & 3) * 64 + ((piece & 15) >> 2) * 16;
    }
    const uint8_t* w_src = p.packed + static_cast<int64_t>(tile0 + min(pt, cta_tiles - 1)) * p.packed_stride +
                           static_cast<int64_t>(chunk_begin) * p.chunk_stride;
    const bool contiguous = p.packed_stride == kTileBytes;  // chunk-major: a chunk's tiles lie in one run
    for (int n = 0; n < steps; ++n) {
      const int s = n % S;
      if (n >= S) mbarrier_wait(&empty[s], ((n / S) & 1) ^ 1);  // step n - S's readers are done
      uint8_t* const stage = ring + s * kStageBytes;
      const int chunk = chunk_begin + n;
      if constexpr (XT) {  // the stage's one arrival announces every byte before a copy is issued
        if (pt == 0) {
          mbarrier_arrive_expect_bytes(&full[s], cta_tiles * kTileBytes + 8 * MT * kXTokenBytes);
          tensor_copy_2d(stage + kWarps * kTileBytes, &x_map, chunk * kChunk, token0, &full[s]);
        }
      }
      if (contiguous) {  // one bulk copy for the CTA's tiles (a bulk copy's cost is mostly per copy)
        if (pt == 0) {
          if constexpr (!XT) mbarrier_expect_bytes(&full[s], cta_tiles * kTileBytes);
          bulk_copy(stage, w_src, cta_tiles * kTileBytes, &full[s]);
        }
      } else if (pt < cta_tiles) {
        if constexpr (!XT) mbarrier_expect_bytes(&full[s], kTileBytes);
        bulk_copy(stage + pt * kTileBytes, w_src, kTileBytes, &full[s]);
      }
      w_src += p.chunk_stride;
      if constexpr (!XT) {
#pragma unroll
        for (int u = 0; u < kPieces; ++u) {
          if (x_group[u] >= 0) {
            const bool valid = chunk * kChunk + 8 * x_group[u] < p.K;  // else zeros (from element 0 of the row)
            copy_async_l1<16>(stage + x_to[u], x_from[u] + (valid ? chunk * kChunk : -8 * x_group[u]), valid);
          }
        }
        mbarrier_arrive_after_copies(&full[s]);
      }
    }
    if constexpr (!XT) asm volatile("cp.async.wait_all;" ::: "memory");
  } else if (tile_warp < cta_tiles) {
    // lanes of tokens past the end read the last token (XT: zeros); their results are never stored
    const bool swapped = XT && (c & 2);  // XT: this lane takes its words in the order 2, 3, 0, 1
    const int swap = swapped ? 32 : 0;  // bytes from word w to word w ^ 2 for w < 2
    int x_lane[MT];
#pragma unroll
    for (int j = 0; j < MT; ++j) {
      x_lane[j] = XT ? kWarps * kTileBytes + (8 * j + g) * kXTokenBytes + c * 64
                     : kWarps * kTileBytes + min(8 * j + g, tokens - 1) * kXTokenBytes + c * 16;
    }
    uint32_t parity = 0;
    for (int base = 0; base < steps; base += S) {
#pragma unroll
      for (int i = 0; i < S; ++i) {
        if (base + i < steps && i % KW == half) {
          const uint8_t* const stage = ring + i * kStageBytes;
          const uint8_t* const tile = stage + tile_warp * kTileBytes;
          mbarrier_wait(&full[i], parity);
          uint4 wq[1][2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint4 q = reinterpret_cast<const uint4*>(tile)[h * 32 + lane];
            wq[0][h] = swapped ? make_uint4(q.z, q.w, q.x, q.y) : q;
          }
          uint32_t bytes[1] = {read_lane_scales<FORMAT, 1, PLANT>(tile + kWeightTileBytes, lane)};
          if constexpr (XT && FORMAT == 0) {  // words 0, 1 take block 2c + 1 and words 2, 3 block 2c, each row
            bytes[0] = prmt(bytes[0], 0, swapped ? 0x2301 : 0x3210);
          }
          auto x_at = [&](int j, int w) {
            if constexpr (XT) return *reinterpret_cast<const uint4*>(stage + x_lane[j] + 16 * w + (w < 2 ? swap : -swap));
            else return *reinterpret_cast<const uint4*>(stage + x_lane[j] + w * 64);
          };
          if constexpr (kXInRegisters) {  // the stage is free before the math
            uint4 bx[MT][4];
#pragma unroll
            for (int j = 0; j < MT; ++j)
#pragma unroll
              for (int w = 0; w < 4; ++w) bx[j][w] = x_at(j, w);
            __syncwarp();
            if (lane == 0) mbarrier_arrive(&empty[i]);
            chunk_mmas<T, FORMAT, MT, 1, 1, PLANT, kTwoChains>(acc, acc_odd, wq, bytes,
                                                               [&](int j, int w) { return bx[j][w]; });
          } else {  // x read word by word during the math; the stage is free after it
            chunk_mmas<T, FORMAT, MT, 1, 1, PLANT, kTwoChains>(acc, acc_odd, wq, bytes, x_at);
            __syncwarp();
            if (lane == 0) mbarrier_arrive(&empty[i]);
          }
        }
      }
      parity ^= 1;
    }
    fold_odd_chain<1, MT, kTwoChains>(acc, acc_odd);
  }
  if constexpr (KW == 2) {  // the odd steps' warp hands its sums to the even steps' (after the ring)
    float* const sums = reinterpret_cast<float*>(ring + S * kStageBytes) + (tile_warp * 32 + lane) * MT * 4;
    float* const mine = &acc[0][0][0];
    if (half == 1 && tile_warp < cta_tiles) {
#pragma unroll
      for (int e = 0; e < MT * 4; ++e) sums[e] = mine[e];
    }
    __syncthreads();
    if (half == 0 && tile_warp < cta_tiles) {
#pragma unroll
      for (int e = 0; e < MT * 4; ++e) mine[e] += sums[e];
    }
  }
  const bool storer = warp < cta_tiles;  // (the even steps' warps)
  finish_tiles<T, FORMAT, 1, MT>(p, acc, (tile0 + min(warp, kWarps - 1)) * 16, token0, storer, row_weight);
}

template <typename T, int FORMAT, int MT, int S, int KW, int XT, int PLANT>
cudaError_t launch_producer_kernel(const GemmParams& p, dim3 grid, cudaStream_t stream) {
  constexpr auto kernel = gemm_producer_kernel<T, FORMAT, MT, S, KW, XT, PLANT>;
  constexpr int bytes = producer_shared_bytes(FORMAT, MT, S, KW, XT);
  cudaError_t err = allow_shared_bytes<kernel>(bytes);
  if (err != cudaSuccess) return err;
  XTensorMap x_map = {};
  if constexpr (XT) {
    err = encode_x_tensor_map<T>(p, 8 * MT, &x_map);
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, (kWarps * KW + producer_warps(XT)) * 32, bytes, stream>>>(p, x_map);
  return cudaGetLastError();
}

// Up to 64 tokens per token group (token tiles 1, 2, 4, 8), the tiled layout, 8 tiles of
// 16 rows per CTA with one or two computing warps each (k_warps), 4 or 8 stages, x by cp.async
// or by the bulk tensor copy engine (x_tensor): the kernels producer_instantiated names.
template <typename T, int FORMAT>
cudaError_t launch_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant, cudaStream_t stream) {
  const int mt = p.token_tiles;
  const dim3 grid = gemm_grid(p, cta_rows(1, 1));
  if (p.row_expert != nullptr || (mt != 1 && mt != 2 && mt != 4 && mt != 8) || (stages != 4 && stages != 8) ||
      (k_warps != 1 && k_warps != 2))
    return cudaErrorInvalidValue;
  auto pick_xt = [&](auto mt_tag, auto s_tag, auto kw_tag, auto xt_tag) -> cudaError_t {
    constexpr int kMT = decltype(mt_tag)::value;
    constexpr int kS = decltype(s_tag)::value;
    constexpr int kKW = decltype(kw_tag)::value;
    constexpr int kXT = decltype(xt_tag)::value;
    if constexpr (!producer_instantiated(FORMAT, kMT, kS, kKW, kXT)) {
      return cudaErrorInvalidValue;
    } else {
      switch (plant) {
        case kNoPlant: return launch_producer_kernel<T, FORMAT, kMT, kS, kKW, kXT, kNoPlant>(p, grid, stream);
        case kNibbleSwap: return launch_producer_kernel<T, FORMAT, kMT, kS, kKW, kXT, kNibbleSwap>(p, grid, stream);
        case kScaleOffByOne: return launch_producer_kernel<T, FORMAT, kMT, kS, kKW, kXT, kScaleOffByOne>(p, grid, stream);
        case kNoMath: return launch_producer_kernel<T, FORMAT, kMT, kS, kKW, kXT, kNoMath>(p, grid, stream);
        default: return cudaErrorInvalidValue;
      }
    }
  };
  auto pick = [&](auto mt_tag, auto s_tag, auto kw_tag) {
    return x_tensor ? pick_xt(mt_tag, s_tag, kw_tag, std::integral_constant<int, 1>{})
                    : pick_xt(mt_tag, s_tag, kw_tag, std::integral_constant<int, 0>{});
  };
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  using Four = std::integral_constant<int, 4>;
  using Eight = std::integral_constant<int, 8>;
  auto with_kw = [&](auto mt_tag, auto s_tag) {
    return k_warps == 1 ? pick(mt_tag, s_tag, One{}) : pick(mt_tag, s_tag, Two{});
  };
  auto with_stages = [&](auto mt_tag) { return stages == 4 ? with_kw(mt_tag, Four{}) : with_kw(mt_tag, Eight{}); };
  switch (mt) {
    case 1: return with_stages(One{});
    case 2: return with_stages(Two{});
    case 4: return with_stages(Four{});
    default: return with_stages(Eight{});
  }
}

// Host side: the kernel for one problem. MT (8-token tiles per CTA: GemmParams.token_tiles,
// the fewest that hold M up to the launch's maximum; larger M runs several token groups);
// R (16-row tiles per warp, 1 or 2), S (ring stages: 4), KW (warps along K per row group:
// 1, 2, 4 or 8) and XR (x streams through a CTA-wide ring; tiled layout only) are tuning
// choices, TL (tiled layout) follows the weight's layout.
// Planted bugs and diagnostics exist for R = 1, S = 4.
template <typename T, int FORMAT, int MT, int R, int S, int KW, int TL, int XR, int PLANT>
cudaError_t launch_kernel(const GemmParams& p, dim3 grid, cudaStream_t stream) {
  constexpr auto kernel = gemm_kernel<T, FORMAT, MT, R, S, KW, TL, XR, PLANT>;
  const int bytes = gemm_shared_bytes(p, FORMAT, R, S, KW, XR != 0);
  const cudaError_t err = allow_shared_bytes<kernel>(bytes);
  if (err != cudaSuccess) return err;
  kernel<<<grid, kWarps * 32, bytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int FORMAT, int MT, int R, int S, int KW, int TL, int XR>
cudaError_t launch_plant(const GemmParams& p, int plant, dim3 grid, cudaStream_t stream) {
  if (plant == kNoPlant) return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNoPlant>(p, grid, stream);
  if constexpr (R != 1 || S != 4) {
    return cudaErrorInvalidValue;
  } else {
    switch (plant) {
      case kNibbleSwap: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNibbleSwap>(p, grid, stream);
      case kScaleOffByOne: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kScaleOffByOne>(p, grid, stream);
      case kNoMath: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNoMath>(p, grid, stream);
      default: break;
    }
    if constexpr (MT == 2 && TL && XR) {  // the M = 16 kernels' parts, one left out at a time
      switch (plant) {
        case kNoXLoads: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNoXLoads>(p, grid, stream);
        case kNoMma: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNoMma>(p, grid, stream);
        case kNoDecode: return launch_kernel<T, FORMAT, MT, R, S, KW, TL, XR, kNoDecode>(p, grid, stream);
        default: break;
      }
    }
    return cudaErrorInvalidValue;
  }
}

template <typename T, int FORMAT, int MT, int R, int S, int KW>
cudaError_t launch_layout(const GemmParams& p, bool tiled, bool x_ring, int plant, dim3 grid, cudaStream_t stream) {
  if (!tiled) return x_ring ? cudaErrorInvalidValue : launch_plant<T, FORMAT, MT, R, S, KW, 0, 0>(p, plant, grid, stream);
  return x_ring ? launch_plant<T, FORMAT, MT, R, S, KW, 1, 1>(p, plant, grid, stream)
                : launch_plant<T, FORMAT, MT, R, S, KW, 1, 0>(p, plant, grid, stream);
}

template <typename T, int FORMAT, int MT, int R, int S>
cudaError_t launch_k_warps(const GemmParams& p, int k_warps, bool tiled, bool x_ring, int plant, dim3 grid,
                           cudaStream_t stream) {
  switch (k_warps) {
    case 1: return launch_layout<T, FORMAT, MT, R, S, 1>(p, tiled, x_ring, plant, grid, stream);
    case 2: return launch_layout<T, FORMAT, MT, R, S, 2>(p, tiled, x_ring, plant, grid, stream);
    case 4: return launch_layout<T, FORMAT, MT, R, S, 4>(p, tiled, x_ring, plant, grid, stream);
    case 8: return launch_layout<T, FORMAT, MT, R, S, 8>(p, tiled, x_ring, plant, grid, stream);
    default: return cudaErrorInvalidValue;
  }
}

// MT 4 and 8 (32 and 64 tokens per CTA, so the weights are decoded once for up to 64
// tokens) exist with the x ring, the tiled layout and one warp along K only.
template <typename T, int FORMAT, int MT>
cudaError_t launch_wide(const GemmParams& p, int rows_per_warp, int k_warps, bool tiled, bool x_ring, int plant,
                        dim3 grid, cudaStream_t stream) {
  if (!tiled || !x_ring || k_warps != 1) return cudaErrorInvalidValue;
  if (rows_per_warp == 1) return launch_plant<T, FORMAT, MT, 1, 4, 1, 1, 1>(p, plant, grid, stream);
  if (rows_per_warp == 2) return launch_plant<T, FORMAT, MT, 2, 4, 1, 1, 1>(p, plant, grid, stream);
  return cudaErrorInvalidValue;
}

template <typename T, int FORMAT>
cudaError_t launch_format(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring,
                          int plant, cudaStream_t stream) {
  const int mt = p.token_tiles;
  const dim3 grid = gemm_grid(p, cta_rows(rows_per_warp, k_warps));
  if (stages != 4) return cudaErrorInvalidValue;  // the one ring depth instantiated (S = 4 below)
  if (mt == 4) return launch_wide<T, FORMAT, 4>(p, rows_per_warp, k_warps, tiled, x_ring, plant, grid, stream);
  if (mt == 8) return launch_wide<T, FORMAT, 8>(p, rows_per_warp, k_warps, tiled, x_ring, plant, grid, stream);
  if (mt != 1 && mt != 2) return cudaErrorInvalidValue;
  if (rows_per_warp == 1) {
    return mt == 1 ? launch_k_warps<T, FORMAT, 1, 1, 4>(p, k_warps, tiled, x_ring, plant, grid, stream)
                   : launch_k_warps<T, FORMAT, 2, 1, 4>(p, k_warps, tiled, x_ring, plant, grid, stream);
  }
  if (rows_per_warp == 2) {
    return mt == 1 ? launch_k_warps<T, FORMAT, 1, 2, 4>(p, k_warps, tiled, x_ring, plant, grid, stream)
                   : launch_k_warps<T, FORMAT, 2, 2, 4>(p, k_warps, tiled, x_ring, plant, grid, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace w4a16
}  // namespace swiglu_check
