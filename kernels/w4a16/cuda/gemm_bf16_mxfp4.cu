// Every bf16 x MXFP4 instantiation of the W4A16 GEMM (one file per dtype and format, so
// nvcc compiles the four in parallel).
#include "w4a16_gemm.cuh"

namespace swiglu_check {
namespace w4a16 {
cudaError_t launch_bf16_mxfp4(const GemmParams& p, int rows_per_warp, int stages, int k_warps, bool tiled, bool x_ring, int plant,
                             cudaStream_t stream) {
  return launch_format<__nv_bfloat16, 1>(p, rows_per_warp, stages, k_warps, tiled, x_ring, plant, stream);
}
cudaError_t launch_bf16_mxfp4_producer(const GemmParams& p, int stages, int k_warps, bool x_tensor, int plant,
                                       cudaStream_t stream) {
  return launch_producer<__nv_bfloat16, 1>(p, stages, k_warps, x_tensor, plant, stream);
}
}  // namespace w4a16
}  // namespace swiglu_check
