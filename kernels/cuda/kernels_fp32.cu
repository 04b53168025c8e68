// Every fp32 instantiation of the gated-activation kernel (one file per dtype, so nvcc
// compiles the three in parallel, in the extension build and in the CI compile test).
#include "act_and_mul.cuh"

namespace swiglu_check {

cudaError_t launch_act_and_mul_fp32(const ActAndMulParams& params, cudaStream_t stream) {
  return detail::dispatch<float>(params, stream);
}

}  // namespace swiglu_check
