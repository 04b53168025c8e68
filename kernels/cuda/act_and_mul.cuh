// The gated-activation kernel: out = act(gate) * (up + beta), with an optional clamp.
//
// One template serves every op of the spec (DESIGN.md section 2): the activation, the
// clamp mode and the layout are compile-time parameters; alpha, beta and the limit are
// run-time values. Math is fp32 with one final rounding to the output dtype.
//
// Memory access: when both tensors and their row strides are 16-byte aligned and D is a
// multiple of the vector width, every thread moves 16 bytes per load and store (8 bf16 or
// fp16 values, 4 fp32 values). Otherwise (odd widths, a column slice whose data pointer is
// one element off) the same kernel takes a scalar path, still coalesced across the warp.
//
// Grid (plan_grid in act_and_mul.h): gridDim.x runs over rows (a block loops when there
// are more rows than blocks), gridDim.y over equal chunks of a row; whole-row blocks when
// the rows fill the device many times over, blocks of 256 work items otherwise.
//
// NaN: the clamps are written as comparisons, so a NaN gate or up stays NaN as with
// torch.clamp. fminf/fmaxf would return the limit instead and hide it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "act_and_mul.h"

namespace swiglu_check {
namespace detail {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluTanhCoeff = 0.044715f;

template <typename T>
struct Convert;

template <>
struct Convert<float> {
  static __device__ __forceinline__ float to_float(float v) { return v; }
  static __device__ __forceinline__ float from_float(float v) { return v; }
};

template <>
struct Convert<__half> {
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct Convert<__nv_bfloat16> {
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

template <Activation kAct, bool kFastMath>
__device__ __forceinline__ float activate(float g, float alpha) {
  if constexpr (kAct == Activation::kSilu && kFastMath) {
    // ex2.approx and rcp.approx, a few ulp of fp32 (far below a bf16/fp16 rounding);
    // a NaN g stays NaN, g -> -inf gives -0 like the IEEE form, except that a divisor
    // in (2^126, 2^128) (g about -88) gives 0 for a result near 1e-37.
    return __fdividef(g, 1.0f + __expf(-alpha * g));
  } else if constexpr (kAct == Activation::kSilu) {
    return g / (1.0f + expf(-alpha * g));  // g * sigmoid(alpha * g)
  } else if constexpr (kAct == Activation::kGelu) {
    return 0.5f * g * (1.0f + erff(alpha * g * kInvSqrt2));
  } else {
    const float z = alpha * g;
    return 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * (z + kGeluTanhCoeff * z * z * z)));
  }
}

// min(v, hi). The comparison form keeps a NaN v (NaN > hi is false).
template <bool kPropagateNan>
__device__ __forceinline__ float clamp_upper(float v, float hi) {
  if constexpr (kPropagateNan) {
    return v > hi ? hi : v;
  } else {
    return fminf(v, hi);
  }
}

// clamp(v, -lim, lim), keeping a NaN v.
template <bool kPropagateNan>
__device__ __forceinline__ float clamp_both(float v, float lim) {
  if constexpr (kPropagateNan) {
    return v > lim ? lim : (v < -lim ? -lim : v);
  } else {
    return fmaxf(fminf(v, lim), -lim);
  }
}

template <Activation kAct, ClampMode kClamp, bool kPropagateNan, bool kFastMath>
__device__ __forceinline__ float gated(float gate, float up, float alpha, float beta, float limit) {
  if constexpr (kClamp != ClampMode::kNone) {
    up = clamp_both<kPropagateNan>(up, limit);
  }
  if constexpr (kClamp == ClampMode::kPre) {
    gate = clamp_upper<kPropagateNan>(gate, limit);
  }
  float a = activate<kAct, kFastMath>(gate, alpha);
  if constexpr (kClamp == ClampMode::kPost) {
    a = clamp_upper<kPropagateNan>(a, limit);
  }
  return a * (up + beta);
}

// 16 bytes <-> kVec floats, through 32-bit words (so loads and stores stay 128-bit wide).
template <typename T>
struct Vec16;

__device__ __forceinline__ unsigned int word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <>
struct Vec16<float> {
  static constexpr int kSize = 4;
  static __device__ __forceinline__ void unpack(const uint4& raw, float* f) {
    f[0] = __uint_as_float(raw.x);
    f[1] = __uint_as_float(raw.y);
    f[2] = __uint_as_float(raw.z);
    f[3] = __uint_as_float(raw.w);
  }
  static __device__ __forceinline__ uint4 pack(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};

// 8 values of a 16-bit type in 4 words: `Bits` converts one half word (lo, hi, bits).
template <typename Bits>
struct Vec16Of16Bit {
  static constexpr int kSize = 8;
  static __device__ __forceinline__ void unpack(const uint4& raw, float* f) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = Bits::lo(word(raw, i));
      f[2 * i + 1] = Bits::hi(word(raw, i));
    }
  }
  static __device__ __forceinline__ uint4 pack(const float* f) {
    return make_uint4(Bits::bits(f[0]) | Bits::bits(f[1]) << 16, Bits::bits(f[2]) | Bits::bits(f[3]) << 16,
                      Bits::bits(f[4]) | Bits::bits(f[5]) << 16, Bits::bits(f[6]) | Bits::bits(f[7]) << 16);
  }
};

struct HalfBits {
  static __device__ __forceinline__ float lo(unsigned int w) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
  }
  static __device__ __forceinline__ float hi(unsigned int w) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
  }
  static __device__ __forceinline__ unsigned int bits(float f) { return __half_as_ushort(__float2half_rn(f)); }
};

struct Bfloat16Bits {
  static __device__ __forceinline__ float lo(unsigned int w) { return __uint_as_float(w << 16); }
  static __device__ __forceinline__ float hi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }
  static __device__ __forceinline__ unsigned int bits(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  }
};

template <>
struct Vec16<__half> : Vec16Of16Bit<HalfBits> {};

template <>
struct Vec16<__nv_bfloat16> : Vec16Of16Bit<Bfloat16Bits> {};

template <typename T>
__device__ __forceinline__ uint4 load16(const T* ptr) {
  return __ldg(reinterpret_cast<const uint4*>(ptr));
}

template <typename T>
__device__ __forceinline__ void store16(T* ptr, const uint4& value) {
  __stwb(reinterpret_cast<uint4*>(ptr), value);  // st.global.wb: a plain 128-bit store
}

template <typename T, Activation kAct, ClampMode kClamp, Layout kLayout, bool kPropagateNan, bool kFastMath>
__global__ void __launch_bounds__(kMaxThreads)
    act_and_mul_kernel(const ActAndMulParams p, const bool vectorized, const int chunk) {
  using Cvt = Convert<T>;
  using Vec = Vec16<T>;
  constexpr int kVec = Vec::kSize;
  static_assert(kVec * sizeof(T) == 16, "a vector is 16 bytes");
  const T* __restrict__ x = static_cast<const T*>(p.x);
  T* __restrict__ out = static_cast<T*>(p.out);
  const int width = static_cast<int>(p.width);  // the host guarantees 2 * width < 2^31
  const float alpha = p.alpha, beta = p.beta, limit = p.limit;

  // This block covers work items [first, last) of its rows: `chunk` of them per block
  // along gridDim.y (vectors on the 16-byte path, elements on the scalar path).
  const int items = vectorized ? width / kVec : width;
  const int first = static_cast<int>(blockIdx.y) * chunk;
  const int last = min(items, first + chunk);
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const T* __restrict__ x_row = x + row * p.x_row_stride;
    T* __restrict__ out_row = out + row * p.out_row_stride;
    if (vectorized) {
      for (int v = first + threadIdx.x; v < last; v += blockDim.x) {
        float gate[kVec], up[kVec], res[kVec];
        if constexpr (kLayout == Layout::kHalves) {
          Vec::unpack(load16(x_row + v * kVec), gate);
          Vec::unpack(load16(x_row + width + v * kVec), up);
        } else {
          // kVec outputs come from 2 * kVec inputs (gate, up, gate, up, ...): two vectors.
          float pairs[2 * kVec];
          Vec::unpack(load16(x_row + 2 * v * kVec), pairs);
          Vec::unpack(load16(x_row + 2 * v * kVec + kVec), pairs + kVec);
#pragma unroll
          for (int i = 0; i < kVec; ++i) {
            gate[i] = pairs[2 * i];
            up[i] = pairs[2 * i + 1];
          }
        }
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
          res[i] = gated<kAct, kClamp, kPropagateNan, kFastMath>(gate[i], up[i], alpha, beta, limit);
        }
        store16(out_row + v * kVec, Vec::pack(res));
      }
    } else {
      for (int j = first + threadIdx.x; j < last; j += blockDim.x) {
        const int gate_at = kLayout == Layout::kHalves ? j : 2 * j;
        const int up_at = kLayout == Layout::kHalves ? width + j : 2 * j + 1;
        out_row[j] = Cvt::from_float(gated<kAct, kClamp, kPropagateNan, kFastMath>(
            Cvt::to_float(x_row[gate_at]), Cvt::to_float(x_row[up_at]), alpha, beta, limit));
      }
    }
  }
}

template <typename T, Activation kAct, ClampMode kClamp, Layout kLayout, bool kPropagateNan, bool kFastMath = false>
cudaError_t launch(const ActAndMulParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.width <= 0) {
    return cudaSuccess;
  }
  const auto kernel = act_and_mul_kernel<T, kAct, kClamp, kLayout, kPropagateNan, kFastMath>;
  const bool vectorized = can_vectorize(p, sizeof(T));
  const int64_t items = vectorized ? p.width / vector_elements(sizeof(T)) : p.width;
  int device = 0, sms = 0, threads_per_sm = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device);
  if (err != cudaSuccess) return err;
  GridPlan plan = plan_grid(p.rows, items, p.items_per_block, p.max_blocks, sms, threads_per_sm, p.max_threads);
  if (p.max_blocks < 0) {  // persistent: as many blocks as are resident at once
    int per_sm = 0;
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, plan.threads, 0);
    if (err != cudaSuccess) return err;
    const int64_t resident = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
    const int64_t along_rows = resident / plan.chunks > 0 ? resident / plan.chunks : 1;
    plan.row_blocks = p.rows < along_rows ? p.rows : along_rows;
  }
  const dim3 grid(static_cast<unsigned int>(plan.row_blocks), static_cast<unsigned int>(plan.chunks));
  const int threads = plan.threads;
  const int64_t chunk = plan.chunk;
  kernel<<<grid, threads, 0, stream>>>(p, vectorized, static_cast<int>(chunk));
  return cudaGetLastError();
}

template <typename T, Activation kAct, ClampMode kClamp, bool kFastMath>
cudaError_t dispatch_layout(const ActAndMulParams& p, cudaStream_t stream) {
  if (p.layout == Layout::kHalves) return launch<T, kAct, kClamp, Layout::kHalves, true, kFastMath>(p, stream);
  if (p.layout == Layout::kInterleaved) {
    return launch<T, kAct, kClamp, Layout::kInterleaved, true, kFastMath>(p, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T, Activation kAct, bool kFastMath = false>
cudaError_t dispatch_clamp(const ActAndMulParams& p, cudaStream_t stream) {
  switch (p.clamp) {
    case ClampMode::kNone: return dispatch_layout<T, kAct, ClampMode::kNone, kFastMath>(p, stream);
    case ClampMode::kPre: return dispatch_layout<T, kAct, ClampMode::kPre, kFastMath>(p, stream);
    case ClampMode::kPost: return dispatch_layout<T, kAct, ClampMode::kPost, kFastMath>(p, stream);
  }
  return cudaErrorInvalidValue;
}

// Every combination of activation, clamp mode and layout for element type T, plus the
// planted fminf-clamp variant (silu, pre clamp) that the NaN tests use, plus the
// fast-math silu kernels (every clamp mode and layout) that the tuning script times.
template <typename T>
cudaError_t dispatch(const ActAndMulParams& p, cudaStream_t stream) {
  if (p.fast_math) {
    if (p.activation != Activation::kSilu || !p.nan_propagating_clamp) return cudaErrorInvalidValue;
    return dispatch_clamp<T, Activation::kSilu, true>(p, stream);
  }
  if (!p.nan_propagating_clamp) {
    if (p.activation != Activation::kSilu || p.clamp != ClampMode::kPre) return cudaErrorInvalidValue;
    if (p.layout == Layout::kHalves) {
      return launch<T, Activation::kSilu, ClampMode::kPre, Layout::kHalves, false>(p, stream);
    }
    return launch<T, Activation::kSilu, ClampMode::kPre, Layout::kInterleaved, false>(p, stream);
  }
  switch (p.activation) {
    case Activation::kSilu: return dispatch_clamp<T, Activation::kSilu>(p, stream);
    case Activation::kGelu: return dispatch_clamp<T, Activation::kGelu>(p, stream);
    case Activation::kGeluTanh: return dispatch_clamp<T, Activation::kGeluTanh>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace detail
}  // namespace swiglu_check
