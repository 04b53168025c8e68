// Host-side interface of the gated-activation kernels: plain C++, no CUDA syntax, so the
// torch binding (binding.cpp) compiles with the host compiler and the kernels
// (act_and_mul.cuh, kernels_*.cu) compile with nvcc alone, without torch headers.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace swiglu_check {

enum class Activation : int { kSilu = 0, kGelu = 1, kGeluTanh = 2 };

// 256 vectors of 16 bytes: one per thread of a 256-thread block. Measured on an H100
// (bf16, 1024 rows): D = 18432 reached 89% of the copy bandwidth with one block looping
// over a whole row, against 97% for many short blocks (16384 x 2048).
constexpr int kDefaultItemsPerBlock = 256;

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

// Launch on `stream`. Returns cudaSuccess, the launch error, or cudaErrorInvalidValue for a
// combination that has no kernel. The caller has checked shapes, strides and the dtype.
cudaError_t launch_act_and_mul_fp32(const ActAndMulParams& params, cudaStream_t stream);
cudaError_t launch_act_and_mul_fp16(const ActAndMulParams& params, cudaStream_t stream);
cudaError_t launch_act_and_mul_bf16(const ActAndMulParams& params, cudaStream_t stream);

}  // namespace swiglu_check
