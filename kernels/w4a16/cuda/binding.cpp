// Torch operator over the W4A16 GEMM kernels (namespace swiglu_check_w4a16):
//
//   gemm_(Tensor x, Tensor packed, Tensor scales, Tensor global_scale, Tensor(a!) y,
//         Tensor partials, Tensor counters, Tensor row_expert, Tensor row_weight, int format,
//         int rows_per_warp, int stages, int k_warps, int split_k, int plant, int tiled,
//         int x_ring, int token_tiles, int producer) -> ()
//
// Routed rows (the MoE's expert GEMMs at a few tokens): with a non-empty int32
// `row_expert` [R], packed is [E, N, K/2], scales [E, N, ...], global_scale [E], x [X, K]
// with R a multiple of X (routed row r reads x row r / (R / X)), y [R, N]; row r is
// x[r / (R / X)] @ dequant(W[row_expert[r]])^T, times row_weight[r] when that fp32 [R]
// tensor is non-empty. partials and counters then hold R times as much. Without it, the
// plain GEMM below. y may be fp32 in both modes.
//
// x [M, K] bf16/fp16 (rows contiguous, 16-byte aligned), packed uint8 [N, K/2], scales
// uint8 [N, K/block padded to whole 128-element chunks] (format 0: NVFP4, e4m3 per 16; 1:
// MXFP4, E8M0 per 32; cuda_gemm.chunk_padded_scales), global_scale
// fp32 [1], y [M, N] of x's dtype. K must be a multiple of 32. split_k > 1 needs fp32
// `partials` of at least split_k * M * N and zeroed int32 `counters`, one per output tile
// (the kernel leaves them zero again). `stages` (4): weight chunks in the shared
// memory ring of each warp; `k_warps` (1, 2, 4 or 8): warps of a CTA sharing its K range
// (a CTA then covers 128 / k_warps * rows_per_warp rows). Runs on the current CUDA stream.
// `plant` (1: nibble order swapped, 2: the next block's scale; 3 to 6: diagnostics, see
// w4a16_gemm.cuh; rows_per_warp 1) exists for the tool's own tests and scripts.
//
// tiled = 1: `packed` holds the tiled layout (w4a16_gemm.h, GemmParams; cuda_gemm.tiled_layout):
// uint8 [ceil(N/16), chunks, tile bytes] ([E, ...] for routed rows), scales and rows
// included, N taken from y; `scales` is then unused (pass an empty tensor). The pieces of
// each matrix lie densely, tile-major or chunk-major (the kernel reads them through strides).
//
// x_ring = 1: x streams chunk by chunk through a ring shared by the CTA's warps instead of
// the CTA staging x over its K range up front (which needs a split of K that fits).
//
// token_tiles (1, 2, 4 or 8): the most 8-token MMA tiles a CTA takes (it takes the fewest
// that hold M, up to this; more tokens run as several token groups). Above 2 only with
// x_ring, tiled and k_warps 1, or the producer kernel: 64 tokens decode each weight once
// instead of 4 times.
//
// producer = 1: the producer-warp kernel (w4a16_gemm.cuh, gemm_producer_kernel): 4 warps
// fill a CTA-wide ring of weights and x for 8 tiles of 16 rows, with k_warps (1 or 2)
// computing warps each. Needs tiled, x_ring 0, rows_per_warp 1, k_warps 1 or 2 (1 at
// token_tiles 4 and 8), stages 4 or 8 (4 at token_tiles 8: the ring must fit shared
// memory), no routed rows and plant 0 to 3. producer = 2: the same kernel with x copied by
// the bulk tensor copy engine (one copy per stage, issued by one producer warp: x_tensor in
// w4a16_gemm.h).
//
// Messages are built as one std::string (no iostreams: see kernels/cuda/binding.cpp).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "w4a16_gemm.h"

namespace swiglu_check {
namespace w4a16 {
namespace {

std::string list_text(at::IntArrayRef values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

std::string shape_text(const at::Tensor& t) { return list_text(t.sizes()); }

void require(bool ok, const std::string& what) { TORCH_CHECK(ok, std::string("w4a16 gemm: ") + what); }

bool aligned(const at::Tensor& t, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % bytes == 0;
}

void gemm(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales, const at::Tensor& global_scale,
          at::Tensor& y, const at::Tensor& partials, const at::Tensor& counters, const at::Tensor& row_expert,
          const at::Tensor& row_weight, int64_t format, int64_t rows_per_warp, int64_t stages, int64_t k_warps,
          int64_t split_k, int64_t plant, int64_t tiled, int64_t x_ring, int64_t max_token_tiles, int64_t producer) {
  require(format == 0 || format == 1, "format must be 0 (NVFP4) or 1 (MXFP4), got " + std::to_string(format));
  require(rows_per_warp == 1 || rows_per_warp == 2, "rows_per_warp must be 1 or 2");
  require(producer >= 0 && producer <= 2, "producer must be 0, 1 or 2 (x by tensor copy), got " + std::to_string(producer));
  const bool x_tensor = producer == 2;
  require(stages == 4 || (producer && stages == 8),
          "stages must be 4 (or 8 with the producer kernel), got " + std::to_string(stages));
  require(!producer || (tiled && !x_ring && rows_per_warp == 1 && (k_warps == 1 || k_warps == 2) &&
                        producer_instantiated(static_cast<int>(format), static_cast<int>(max_token_tiles),
                                              static_cast<int>(stages), static_cast<int>(k_warps), x_tensor) &&
                        row_expert.numel() == 0 && plant <= 3),
          "the producer kernel needs tiled 1, x_ring 0, rows_per_warp 1, k_warps 1 or 2 (1 above 2 token tiles), "
          "4 stages at token_tiles 8 (4 or 8 with x by tensor copy), no routed rows and "
          "plant 0 to 3");
  require(k_warps == 1 || k_warps == 2 || k_warps == 4 || k_warps == 8, "k_warps must be 1, 2, 4 or 8, got " + std::to_string(k_warps));
  require(plant >= 0 && plant <= 6, "plant must be 0 to 6, got " + std::to_string(plant));
  require(plant == 0 || rows_per_warp == 1, "planted bugs exist for rows_per_warp 1 only");
  require(x.is_cuda(), "x must be a CUDA tensor");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&packed, &scales, &global_scale, &y, &partials,
                                                                      &counters, &row_expert, &row_weight}) {
    require(t->device() == x.device(), "every tensor must be on x's device");
  }
  require(x.dim() == 2, "x must be [M, K], got " + shape_text(x));
  require(x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf, "x must be bf16 or fp16");
  const bool routed = row_expert.numel() > 0;
  const int64_t routed_rows = routed ? row_expert.numel() : 0;
  const int64_t experts = routed ? packed.size(0) : 1;
  require(tiled == 0 || tiled == 1, "tiled must be 0 or 1");
  require(x_ring == 0 || x_ring == 1, "x_ring must be 0 or 1");
  require(!x_ring || tiled, "x_ring needs the tiled layout (tiled = 1)");
  require(max_token_tiles == 1 || max_token_tiles == 2 || max_token_tiles == 4 || max_token_tiles == 8,
          "token_tiles must be 1, 2, 4 or 8, got " + std::to_string(max_token_tiles));
  require(max_token_tiles <= 2 || producer || (x_ring && k_warps == 1),
          "token_tiles 4 and 8 need x_ring (and the tiled layout) and k_warps 1, or the producer kernel");
  // per routed row one token; else x's rows
  const int64_t m = routed ? 1 : x.size(0), k = x.size(1);
  if (routed) {
    require(row_expert.scalar_type() == at::kInt && row_expert.dim() == 1 && row_expert.is_contiguous(),
            "row_expert must be contiguous int32 [R]");
    require(routed_rows <= 65535, "at most 65535 routed rows per call");
    require(x.size(0) > 0 && routed_rows % x.size(0) == 0,
            "routed rows (" + std::to_string(routed_rows) + ") must be a multiple of x's rows (" +
                std::to_string(x.size(0)) + ")");
    require(packed.dim() == (tiled ? 4 : 3) && experts > 0 && global_scale.numel() == experts,
            "routed rows need packed [E, N, K/2] (tiled: [E, tiles, chunks, bytes]) and global_scale [E], got packed " +
                shape_text(packed));
    require(row_weight.numel() == 0 || (row_weight.scalar_type() == at::kFloat && row_weight.numel() == routed_rows &&
                                        row_weight.is_contiguous()),
            "row_weight must be empty or contiguous fp32 [R]");
  } else {
    require(row_weight.numel() == 0, "row_weight needs row_expert");
  }
  const at::Tensor packed2 = routed ? packed.select(0, 0) : packed;  // one expert's matrix (its checks)
  const int64_t block = format == 0 ? 16 : 32;
  require(k % 32 == 0, "K must be a multiple of 32, got " + std::to_string(k));
  require(x.stride(1) == 1 && x.stride(0) % 8 == 0 && aligned(x, 16),
          "x rows must be contiguous and 16-byte aligned");
  const int64_t chunks = (k + kChunk - 1) / kChunk;
  const int64_t chunk_scales = chunk_scale_bytes(static_cast<int>(format));
  int64_t n = 0;
  if (tiled) {
    require(y.dim() == 2, "y must be [M, N], got " + shape_text(y));
    n = y.size(1);
    const int64_t tile_bytes = ring_tile_bytes(static_cast<int>(format));
    const int64_t tiles = (n + 15) / 16;
    require(packed.scalar_type() == at::kByte && aligned(packed, 16) && packed2.dim() == 3 && packed2.size(0) == tiles &&
                packed2.size(1) == chunks && packed2.size(2) == tile_bytes,
            "tiled packed must be uint8 [" + std::string(routed ? "E, " : "") + std::to_string(tiles) + ", " +
                std::to_string(chunks) + ", " + std::to_string(tile_bytes) + "] (16-row tiles, chunks, bytes), got " +
                shape_text(packed));
    // each matrix dense, its pieces tile-major or chunk-major (no overlaps, no gaps; the
    // stride of a dimension of size 1 is never used)
    const bool tile_major = (chunks == 1 || packed2.stride(1) == tile_bytes) &&
                            (tiles == 1 || packed2.stride(0) == chunks * tile_bytes);
    const bool chunk_major = (tiles == 1 || packed2.stride(0) == tile_bytes) &&
                             (chunks == 1 || packed2.stride(1) == tiles * tile_bytes);
    require(packed2.stride(2) == 1 && (tile_major || chunk_major) &&
                (!routed || experts == 1 || packed.stride(0) == tiles * chunks * tile_bytes),
            "tiled packed must hold each matrix's pieces densely, tile-major or chunk-major, got strides " +
                list_text(packed.strides()));
  } else {
    const at::Tensor scales2 = routed ? scales.select(0, 0) : scales;
    n = packed2.size(0);
    require(packed2.scalar_type() == at::kByte && packed2.dim() == 2 && packed2.size(1) * 2 == k,
            "packed must be uint8 [N, K/2], got " + shape_text(packed2));
    require(packed2.stride(1) == 1 && packed2.stride(0) % 16 == 0 && aligned(packed2, 16),
            "packed rows must be contiguous and 16-byte aligned");
    require(scales2.scalar_type() == at::kByte && scales2.dim() == 2 && scales2.size(0) == n &&
                scales2.size(1) == chunks * chunk_scales,
            "scales must be uint8 [N, " + std::to_string(chunks * chunk_scales) + "] (K/" + std::to_string(block) +
                " block scales per row, padded to whole 128-element chunks), got " + shape_text(scales2));
    require(scales2.stride(1) == 1 && scales2.stride(0) % chunk_scales == 0 && aligned(scales2, chunk_scales),
            "scales rows must be contiguous and " + std::to_string(chunk_scales) + "-byte aligned");
    if (routed) {
      require(scales.dim() == 3 && scales.size(0) == experts,
              "routed rows need scales [E, N, ...], got " + shape_text(scales));
      require(packed.stride(0) % 16 == 0 && scales.stride(0) % chunk_scales == 0,
              "the experts' packed and scales matrices must start 16- and " + std::to_string(chunk_scales) +
                  "-byte aligned");
    }
  }
  require(global_scale.scalar_type() == at::kFloat && global_scale.is_contiguous() && global_scale.numel() == experts,
          routed ? "global_scale must be fp32 [E]" : "global_scale must be one fp32");
  const int64_t y_rows = routed ? routed_rows : m;
  require((y.scalar_type() == x.scalar_type() || y.scalar_type() == at::kFloat) && y.dim() == 2 &&
              y.size(0) == y_rows && y.size(1) == n && y.stride(1) == 1,
          "y must be [" + std::string(routed ? "R" : "M") + ", N] of x's dtype or fp32 with contiguous rows, got " +
              shape_text(y));
  require(split_k >= 1, "split_k must be at least 1");
  const int mt = token_tiles(static_cast<int>(m), static_cast<int>(max_token_tiles));
  // (the producer kernel's CTA is 8 tiles whatever its warps per tile)
  const int64_t rows_per_cta = producer ? cta_rows(1, 1) : cta_rows(static_cast<int>(rows_per_warp), static_cast<int>(k_warps));
  const int64_t tiles = ((n + rows_per_cta - 1) / rows_per_cta) * token_groups(static_cast<int>(m), mt);
  if (split_k > 1) {
    const int64_t batches = routed ? routed_rows : 1;
    require(partials.scalar_type() == at::kFloat && partials.is_contiguous() &&
                partials.numel() >= batches * split_k * m * n,
            "partials must be contiguous fp32 of at least split_k * M * N elements (per routed row)");
    require(counters.scalar_type() == at::kInt && counters.is_contiguous() && counters.numel() >= batches * tiles,
            "counters must be contiguous int32, one per output tile (" + std::to_string(batches * tiles) + ")");
  }
  if (m == 0 || n == 0) return;
  c10::cuda::CUDAGuard guard(x.device());
  GemmParams p{};
  p.x = x.data_ptr();
  p.packed = packed.data_ptr<uint8_t>();
  p.scales = tiled ? nullptr : scales.data_ptr<uint8_t>();
  p.y_fp32 = y.scalar_type() == at::kFloat;
  if (routed) {
    p.row_expert = row_expert.data_ptr<int>();
    p.row_weight = row_weight.numel() ? row_weight.data_ptr<float>() : nullptr;
    p.routed_rows = static_cast<int>(routed_rows);
    p.experts = static_cast<int>(experts);
    p.x_div = static_cast<int>(routed_rows / x.size(0));
    p.expert_packed_stride = packed.stride(0);
    p.expert_scale_stride = tiled ? 0 : scales.stride(0);
  }
  p.global_scale = global_scale.data_ptr<float>();
  p.y = y.data_ptr();
  p.partials = split_k > 1 ? partials.data_ptr<float>() : nullptr;
  p.counters = split_k > 1 ? counters.data_ptr<int>() : nullptr;
  p.M = static_cast<int>(m);
  p.N = static_cast<int>(n);
  p.K = static_cast<int>(k);
  p.x_stride = x.stride(0);
  p.packed_stride = packed2.stride(0);  // tiled: bytes between 16-row tiles
  p.chunk_stride = tiled ? packed2.stride(1) : 0;
  p.scale_stride = tiled ? 0 : scales.stride(-2);
  p.y_stride = y.stride(0);
  p.split_k = static_cast<int>(split_k);
  p.token_tiles = mt;
  const bool ring_x = x_ring != 0;
  const int shared = producer ? producer_shared_bytes(static_cast<int>(format), mt, static_cast<int>(stages),
                                                      static_cast<int>(k_warps), x_tensor)
                              : gemm_shared_bytes(p, static_cast<int>(format), static_cast<int>(rows_per_warp),
                                                  static_cast<int>(stages), static_cast<int>(k_warps), ring_x);
  if (shared > kDefaultSharedBytes) {  // the common case needs no device query
    int max_shared = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, x.device().index()));
    require(shared <= max_shared, std::string(producer ? "this ring" : "this split of K") + " needs " +
                                      std::to_string(shared) + " bytes of shared memory per CTA, more than the device's " +
                                      std::to_string(max_shared) + (producer ? "; use fewer stages" : "; use a larger split_k"));
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const int r = static_cast<int>(rows_per_warp), st = static_cast<int>(stages), kw = static_cast<int>(k_warps),
            pl = static_cast<int>(plant);
  cudaError_t err = cudaSuccess;
  if (producer) {
    err = bf16 ? (format == 0 ? launch_bf16_nvfp4_producer(p, st, kw, x_tensor, pl, stream)
                              : launch_bf16_mxfp4_producer(p, st, kw, x_tensor, pl, stream))
               : (format == 0 ? launch_fp16_nvfp4_producer(p, st, kw, x_tensor, pl, stream)
                              : launch_fp16_mxfp4_producer(p, st, kw, x_tensor, pl, stream));
  } else {
    err = bf16 ? (format == 0 ? launch_bf16_nvfp4(p, r, st, kw, tiled != 0, ring_x, pl, stream)
                              : launch_bf16_mxfp4(p, r, st, kw, tiled != 0, ring_x, pl, stream))
               : (format == 0 ? launch_fp16_nvfp4(p, r, st, kw, tiled != 0, ring_x, pl, stream)
                              : launch_fp16_mxfp4(p, r, st, kw, tiled != 0, ring_x, pl, stream));
  }
  require(err == cudaSuccess, std::string("kernel launch failed: ") + cudaGetErrorString(err));
}

}  // namespace
}  // namespace w4a16
}  // namespace swiglu_check

TORCH_LIBRARY_FRAGMENT(swiglu_check_w4a16, m) {
  m.def(
      "gemm_(Tensor x, Tensor packed, Tensor scales, Tensor global_scale, Tensor(a!) y, Tensor partials, "
      "Tensor counters, Tensor row_expert, Tensor row_weight, int format, int rows_per_warp, int stages, int k_warps, "
      "int split_k, int plant, int tiled, int x_ring, int token_tiles, int producer) -> ()");
}

TORCH_LIBRARY_IMPL(swiglu_check_w4a16, CUDA, m) { m.impl("gemm_", &swiglu_check::w4a16::gemm); }
