// Host-side interface of the gated-activation kernels: plain C++, no CUDA syntax, so the
// torch binding (binding.cpp) compiles with the host compiler and the kernels
// (act_and_mul.cuh, kernels_*.cu) compile with nvcc alone, without torch headers.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace swiglu_check {

enum class Activation : int { kSilu = 0, kGelu = 1, kGeluTanh = 2 };



// kPre:  gate = min(gate, L), up = clamp(up, -L, L), then act(gate) * (up + beta).
// kPost: up = clamp(up, -L, L), a = min(act(gate), L), then a * (up + beta).
enum class ClampMode : int { kNone = 0, kPre = 1, kPost = 2 };

// kHalves: gate = x[..., :D], up = x[..., D:]; kInterleaved: gate = x[..., 0::2], up = x[..., 1::2].
enum class Layout : int { kHalves = 0, kInterleaved = 1 };

struct ActAndMulParams {
  const void* x = nullptr;     // rows of 2 * width elements, last dimension contiguous
  void* out = nullptr;         // rows of width elements, last dimension contiguous
  int64_t rows = 0;
  int64_t width = 0;           // D, the number of outputs per row
  int64_t x_row_stride = 0;    // elements from one row of x to the next
  int64_t out_row_stride = 0;  // elements from one row of out to the next
  float alpha = 1.0f;          // act(alpha * gate) inside the activation (gpt-oss: 1.702)
  float beta = 0.0f;           // act(gate) * (up + beta) (gpt-oss: 1)
  float limit = 0.0f;          // the clamp limit; ignored when clamp == kNone
  Activation activation = Activation::kSilu;
  ClampMode clamp = ClampMode::kNone;
  Layout layout = Layout::kHalves;
  // Work items (16-byte vectors, or elements on the scalar path) of one row per thread
  // block; a row longer than that is split over several blocks (gridDim.y). <= 0: the
  // default, kDefaultItemsPerBlock.
  int items_per_block = 0;
  // Blocks along the rows (gridDim.x). 0: one per row. > 0: at most this many, each
  // looping over rows. < 0: as many as fit on the device at once (a persistent grid).
  int max_blocks = 0;
  // Threads per block at most (rounded up to a warp; <= 0: as many as the chunk has work
  // items, up to kMaxThreads). Fewer threads than items: each thread loops over several.
  int max_threads = 0;
  // silu only: __expf and __fdividef (ex2.approx, rcp.approx: the math the `triton`
  // kernel compiles to) instead of expf and an IEEE division. The operators' default for
  // fp16/bf16 outputs (binding.cpp, silu_math).
  bool fast_math = false;
  // false only for a planted-bug variant used by the tests: the clamp written with
  // fminf/fmaxf, which turns a NaN input into +-L (silu with the pre clamp only).
  bool nan_propagating_clamp = true;
};

// Elements per 16-byte vector for an element of `elem_bytes` bytes (8 for bf16/fp16, 4 for fp32).
inline int64_t vector_elements(int64_t elem_bytes) { return 16 / elem_bytes; }

// Whether the 16-byte load/store path applies: both base pointers and both row strides
// 16-byte aligned and D a multiple of the vector width (so the up half and every output
// row start on a 16-byte boundary too). Otherwise the kernel takes its scalar path.
inline bool can_vectorize(const ActAndMulParams& p, int64_t elem_bytes) {
  const auto aligned = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; };
  return aligned(p.x) && aligned(p.out) && p.width % vector_elements(elem_bytes) == 0 &&
         (p.x_row_stride * elem_bytes) % 16 == 0 && (p.out_row_stride * elem_bytes) % 16 == 0;
}

// --- Launch geometry (host only; unit-tested on the CPU by tests/test_cuda_compile.py) ---

constexpr int kMaxThreads = 512;
constexpr int kMaxBlocksPerSm = 32;
constexpr int64_t kMaxChunks = 65535;         // gridDim.y limit
constexpr int64_t kMaxRowBlocks = 2147483647;  // gridDim.x limit; blocks loop over further rows
// A row is split into blocks of this many work items (16-byte vectors, or elements on the
// scalar path), one per thread, unless whole-row blocks fill the device this many times over.
// Measured on an H100 (bf16; CUDA-graph timing): with 1024 rows, whole-row blocks reached
// 83% (D = 7168) and 87% (D = 18432) of the copy bandwidth, 256-item blocks 87% and 89%;
// with 16384 rows, whole-row blocks 98% and 99%, 256-item blocks 96% and 97%.
constexpr int64_t kDefaultItemsPerBlock = 256;
constexpr int64_t kMinWavesForWholeRows = 8;

struct GridPlan {
  int64_t row_blocks = 1;  // gridDim.x
  int64_t chunks = 1;      // gridDim.y: blocks along one row
  int64_t chunk = 1;       // work items of a row per block
  int threads = 32;
};

// Threads for `items` work items: as few equal passes as possible, a multiple of the warp
// size, at most kMaxThreads.
inline int threads_for(int64_t items) {
  const int64_t passes = items > 0 ? (items + kMaxThreads - 1) / kMaxThreads : 1;
  int64_t threads = items > 0 ? (items + passes - 1) / passes : 1;
  threads = (threads + 31) / 32 * 32;
  return static_cast<int>(threads < 32 ? 32 : threads);
}

// The grid for `rows` rows of `items` work items on a device of `sms` multiprocessors of
// `threads_per_sm` threads. items_per_block <= 0 picks whole-row blocks or 256-item blocks
// (above); max_blocks > 0 caps gridDim.x (the persistent grid, max_blocks < 0, is sized by
// the caller from the occupancy of the kernel); max_threads > 0 caps the block size.
inline GridPlan plan_grid(int64_t rows, int64_t items, int64_t items_per_block, int64_t max_blocks, int sms,
                          int threads_per_sm, int64_t max_threads = 0) {
  GridPlan plan;
  int64_t per_block = items_per_block;
  if (per_block <= 0) {
    const int64_t whole_row_threads = threads_for(items);
    int64_t per_sm = threads_per_sm / whole_row_threads;
    per_sm = per_sm < kMaxBlocksPerSm ? (per_sm > 0 ? per_sm : 1) : kMaxBlocksPerSm;
    const int64_t resident = static_cast<int64_t>(sms > 0 ? sms : 1) * per_sm;
    per_block = rows >= kMinWavesForWholeRows * resident ? items : kDefaultItemsPerBlock;
  }
  per_block = per_block > 0 ? per_block : 1;
  plan.chunks = items > 0 ? (items + per_block - 1) / per_block : 1;
  plan.chunks = plan.chunks < kMaxChunks ? plan.chunks : kMaxChunks;
  plan.chunk = items > 0 ? (items + plan.chunks - 1) / plan.chunks : 1;
  plan.chunks = items > 0 ? (items + plan.chunk - 1) / plan.chunk : 1;  // no empty chunk at the end
  plan.threads = threads_for(plan.chunk);
  if (max_threads > 0) {
    const int64_t cap = max_threads < kMaxThreads ? (max_threads + 31) / 32 * 32 : kMaxThreads;
    plan.threads = plan.threads < cap ? plan.threads : static_cast<int>(cap);
  }
  plan.row_blocks = rows > 0 ? rows : 1;
  if (max_blocks > 0 && max_blocks < plan.row_blocks) plan.row_blocks = max_blocks;
  plan.row_blocks = plan.row_blocks < kMaxRowBlocks ? plan.row_blocks : kMaxRowBlocks;
  return plan;
}

// Launch on `stream`. Returns cudaSuccess, the launch error, or cudaErrorInvalidValue for a
// combination that has no kernel. The caller has checked shapes, strides and the dtype.
cudaError_t launch_act_and_mul_fp32(const ActAndMulParams& params, cudaStream_t stream);
cudaError_t launch_act_and_mul_fp16(const ActAndMulParams& params, cudaStream_t stream);
cudaError_t launch_act_and_mul_bf16(const ActAndMulParams& params, cudaStream_t stream);

}  // namespace swiglu_check
