// Host-side declarations of the W4A16 GEMM launchers (one per activation dtype and weight
// format; the kernels are in w4a16_gemm.cuh, instantiated by gemm_<dtype>_<format>.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace swiglu_check {
namespace w4a16 {

// per CTA; session 10's A/B against 4: up to 20% faster at the M <= 16 bench shapes (16x4096x4096),
// at most 0.3 us slower at two of them (kernels/w4a16/NOTES.md)
constexpr int kWarps = 8;
constexpr int kChunk = 128;  // K elements per step of a warp

struct GemmParams {
  const void* x;              // [M, K] bf16/fp16, rows of stride x_stride elements
  // Rows layout: packed [N, K/2] rows, scales [N, chunks * chunk_scale_bytes] (whole
  // chunks per row). Tiled layout (the launchers' `tiled`): packed is [ceil(N/16), chunks,
  // ring_tile_bytes] (packed_stride bytes between 16-row tiles, chunk_stride between the
  // chunks of a tile: tile-major or chunk-major), each piece one ring stage of one 16-row
  // tile as the kernel keeps it in shared memory (weights, then the 16 rows' scale bytes),
  // so a warp's copy of a chunk is one contiguous run; scales is unused there.
  const uint8_t* packed;
  const uint8_t* scales;
  const float* global_scale;  // one fp32 (NVFP4; ones for MXFP4)
  void* y;                    // [M, N], rows of stride y_stride elements
  float* partials;            // [split_k, M, N] fp32 when split_k > 1
  int* counters;              // one zeroed int per output tile when split_k > 1
  int M, N, K;
  int64_t x_stride, packed_stride, scale_stride, y_stride;
  int64_t chunk_stride;       // tiled layout: bytes between a tile's chunks
  int split_k;
  int token_tiles;            // 8-token MMA tiles per CTA: token_tiles(M, the launch's maximum)
  int y_fp32;                 // y is fp32 (else x's dtype)
  // Routed rows (the MoE's expert GEMMs at a few tokens): when row_expert is set, grid z
  // runs the routed rows r, one token each (M = 1): expert row_expert[r]'s weights (packed
  // and scales advance by the expert strides, global_scale by one), x row r / x_div, y row
  // r, partials and counters of their own; row_weight (optional) multiplies row r's result.
  const int* row_expert;
  const float* row_weight;
  int routed_rows, experts, x_div;
  int64_t expert_packed_stride, expert_scale_stride;
};

// 8-token MMA tiles per CTA for M tokens: the fewest of 1, 2, 4, 8 that hold them, at most
// max_tiles (more tokens run as several token groups, each re-reading the weight tile
// through L2). 4 and 8 exist for the x ring only (w4a16_gemm.cuh, launch_wide).
inline int token_tiles(int m, int max_tiles) {
  int mt = 1;
  while (mt < max_tiles && 8 * mt < m) mt *= 2;
  return mt;
}

// Token groups of 8 * mt tokens that M tokens run as (the fastest part of grid x).
__host__ __device__ constexpr int token_groups(int m, int mt) { return (m + 8 * mt - 1) / (8 * mt); }

// Weight rows of one CTA: its warps form kWarps / k_warps row groups of rows_per_warp
// 16-row tiles each, the k_warps warps of a group sharing the CTA's K range.
inline int cta_rows(int rows_per_warp, int k_warps) { return kWarps / k_warps * 16 * rows_per_warp; }

constexpr int kDefaultSharedBytes = 48 * 1024;  // dynamic shared memory a launch gets without opting in
constexpr int kMaxSharedBytes = 227 * 1024;  // shared memory per CTA on sm_90 with the opt-in (the most the kernels target)
constexpr int kStaticSharedBound = 1024;  // the kernels' static shared memory (barriers, flags) is at most this
constexpr int kWeightTileBytes = 2 * 32 * 16;  // one warp's 16-row tile of one chunk: two 16-byte loads per lane

// Scale bytes of one weight row over one chunk: 8 NVFP4 blocks of 16, or 4 MXFP4 blocks of 32.
// The kernel copies them as one piece per row, so every scale row must hold whole chunks
// (the host pads the rows when K % 128 != 0) and start at a multiple of this many bytes.
__host__ __device__ constexpr int chunk_scale_bytes(int format) { return format == 0 ? 8 : 4; }

// One ring stage of one warp's 16-row tile: the packed weights, then the 16 rows' scale bytes
// (also one piece of the tiled layout: cuda_gemm.tiled_layout).
__host__ __device__ constexpr int ring_tile_bytes(int format) { return kWeightTileBytes + 16 * chunk_scale_bytes(format); }

// One token's x over `chunks` chunks in shared memory, plus 64 bytes so that neighbouring
// tokens start 64 bytes apart in the banks (the two tokens of one 8-lane phase of a
// 16-byte load). Mirrored by cuda_gemm.x_shared_bytes.
__host__ __device__ constexpr int x_row_bytes(int chunks) { return chunks * kChunk * 2 + 64; }

// One token's x over one chunk in a stage of the CTA's x ring (x_ring), in the staged
// slice's order (x_row_bytes), plus 64 bytes for the banks as there.
__host__ __device__ constexpr int x_ring_token_bytes() { return kChunk * 2 + 64; }

// x of the producer kernel by the bulk tensor copy engine (x_tensor): one tensor copy per
// stage of the token group's rows, each over the chunk and 8 elements more, so that rows lie
// 272 bytes apart (16 mod 128: with the consumers' word order, gemm_producer_kernel, the 8
// lanes of a 16-byte load phase hit 8 different 16-byte bank groups). The 8 extra elements
// (6% more of x read from L2) are never used. One producer warp issues the copies.
constexpr int kXTensorBoxElements = kChunk + 8;
struct alignas(128) XTensorMap {  // a CUtensorMap's 128 opaque bytes (made on the host, w4a16_gemm.cuh)
  unsigned long long opaque[16];
};
__host__ __device__ constexpr int producer_warps(bool x_tensor) { return x_tensor ? 1 : 4; }
__host__ __device__ constexpr int producer_x_token_bytes(bool x_tensor) {
  return x_tensor ? kXTensorBoxElements * 2 : x_ring_token_bytes();
}

// One stage of the producer kernel's CTA-wide ring (w4a16_gemm.cuh, gemm_producer_kernel):
// the kWarps tiles' pieces of one chunk, then x rows for 8 * token_tiles tokens, rounded up to
// 128 bytes so that every stage starts on the grid of its global source.
__host__ __device__ constexpr int producer_stage_bytes(int format, int token_tiles, bool x_tensor) {
  return (kWarps * ring_tile_bytes(format) + 8 * token_tiles * producer_x_token_bytes(x_tensor) + 127) / 128 * 128;
}

// The producer kernel's dynamic shared memory: its ring of `stages` stages, then with two
// computing warps per tile (k_warps 2) the odd steps' warps' sums (MT * 4 floats per lane).
__host__ __device__ constexpr int producer_shared_bytes(int format, int token_tiles, int stages, int k_warps,
                                                        bool x_tensor) {
  return stages * producer_stage_bytes(format, token_tiles, x_tensor) +
         (k_warps == 2 ? kWarps * 32 * token_tiles * 4 * 4 : 0);
}

// Which producer kernels exist (the launchers instantiate these, the binding and
// cuda_gemm.producer_kernel_exists accept these): 32 and 64 tokens (token tiles 4, 8) with
// one computing warp per tile only (with two, their 640 threads get 96 registers each and
// spilled; one was faster anyway, H100 session 16: 64x4096x14336 NVFP4 34.7 against 43.5 us
// at 8 token tiles), only rings that fit the H100's shared memory (8 token tiles: 4 stages
// with x by cp.async, 4 or 8 with x_tensor's narrower rows).
__host__ __device__ constexpr bool producer_instantiated(int format, int token_tiles, int stages, int k_warps,
                                                         bool x_tensor) {
  return (token_tiles <= 2 || k_warps == 1) &&
         producer_shared_bytes(format, token_tiles, stages, k_warps, x_tensor) + kStaticSharedBound <= kMaxSharedBytes;
}

// Dynamic shared memory of one CTA: a ring of `stages` chunks per warp (R 16-row tiles of
// weights and scales), then the CTA's x: with x_ring a ring of `stages` steps, each the
// tokens (at most 8 per token tile) over the k_warps chunks the warps take at one step;
// else the tokens over the chunks of one split of K, staged up front (w4a16_gemm.cuh).
inline int gemm_shared_bytes(const GemmParams& p, int format, int rows_per_warp, int stages, int k_warps, bool x_ring) {
  const int chunks = (p.K + kChunk - 1) / kChunk;
  const int per_split = (chunks + p.split_k - 1) / p.split_k;
  const int tokens = p.M < 8 * p.token_tiles ? p.M : 8 * p.token_tiles;
  const int rings = kWarps * stages * rows_per_warp * ring_tile_bytes(format);
  return rings + (x_ring ? stages * k_warps * tokens * x_ring_token_bytes() : tokens * x_row_bytes(per_split));
}

// The producer-warp kernel (stages 4 or 8, k_warps 1 or 2, x by cp.async or x_tensor):
// launch_<dtype>_<format>_producer.
cudaError_t launch_bf16_nvfp4_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant,
                                       cudaStream_t stream);
cudaError_t launch_bf16_mxfp4_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant,
                                       cudaStream_t stream);
cudaError_t launch_fp16_nvfp4_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant,
                                       cudaStream_t stream);
cudaError_t launch_fp16_mxfp4_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant,
                                       cudaStream_t stream);
cudaError_t launch_bf16_nvfp4(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring, int plant,
                             cudaStream_t stream);
cudaError_t launch_bf16_mxfp4(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring, int plant,
                             cudaStream_t stream);
cudaError_t launch_fp16_nvfp4(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring, int plant,
                             cudaStream_t stream);
cudaError_t launch_fp16_mxfp4(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring, int plant,
                             cudaStream_t stream);

}  // namespace w4a16
}  // namespace swiglu_check
