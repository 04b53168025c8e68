// Every fp16 instantiation of the gated-activation kernel (one file per dtype, so nvcc
// compiles the three in parallel, in the extension build and in the CI compile test).
#include "act_and_mul.cuh"

namespace swiglu_check {

cudaError_t launch_act_and_mul_fp16(const ActAndMulParams& params, cudaStream_t stream) {
  return detail::dispatch<__half>(params, stream);
}

}  // namespace swiglu_check
