// Torch operators over the gated-activation kernels (namespace swiglu_check):
//
//   act_and_mul(Tensor x, str activation="silu", float alpha=1., float beta=0.,
//               float? limit=None, str layout="halves", str clamp="pre") -> Tensor
//   act_and_mul.out(..., *, Tensor(a!) out) -> Tensor(a!)
//   _act_and_mul_variant(..., int max_blocks, int items_per_block, str fault, int max_threads=0,
//                        str math="default", *, Tensor(a!) out)
//
// x is [..., 2D] in fp32, fp16 or bf16 on a CUDA device; out is [..., D] of the same dtype.
// The last dimension must be contiguous; the rows may be strided (a column slice of a
// wider tensor works without a copy: the row stride is a kernel argument, and a pointer
// that is not 16-byte aligned selects the scalar path). The kernels run on the current
// CUDA stream of x's device.
//
// `_act_and_mul_variant` exists for tuning and tests: `max_blocks`, `items_per_block` and
// `max_threads` pick the grid (see ActAndMulParams; 0, 0 and 0 are the defaults),
// `math` the silu arithmetic ("default", "fast" or "precise"; see silu_math below), and
// `fault` plants a known bug so the tests can show that the tool catches it.
//
// silu arithmetic: fp16 and bf16 outputs use __expf and __fdividef by default (a few fp32
// ulp, far below their rounding; the math Triton compiles silu to, and measured faster at
// T = 1024 on the H100); fp32 outputs, whose floor would see those ulp, use expf and an
// IEEE division. The other activations have one form.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "act_and_mul.h"

namespace swiglu_check {
namespace {

// Error messages are built as one std::string, without iostreams. On the H100 machine
// (torch 2.11, g++ 13.3) formatting a number through std::ostream inside this extension
// crashed with SIGSEGV (num_put reached through a codecvt vtable: the stream's locale
// facets did not match the library code formatting into it), while c10::str() of a single
// std::string returns it untouched. tests/test_cuda_compile.py checks that the compiled
// binding references no ostream code at all.
std::string text(const char* s) { return s; }
std::string text(c10::string_view s) { return std::string(s.data(), s.size()); }
std::string text(int64_t v) { return std::to_string(v); }
std::string text(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", v);
  return buffer;
}
std::string text(const c10::Device& device) { return device.str(); }
std::string text(at::ScalarType dtype) { return c10::toString(dtype); }
std::string text(c10::IntArrayRef values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(values[i]);
  }
  return out + "]";
}

template <typename... Parts>
std::string message(const Parts&... parts) {
  std::string out;
  (out.append(text(parts)), ...);
  return out;
}

Activation parse_activation(c10::string_view name) {
  if (name == "silu") return Activation::kSilu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_tanh") return Activation::kGeluTanh;
  TORCH_CHECK(false, message("act_and_mul: unknown activation '", name, "'; expected silu, gelu or gelu_tanh"));
}

Layout parse_layout(c10::string_view name) {
  if (name == "halves") return Layout::kHalves;
  if (name == "interleaved") return Layout::kInterleaved;
  TORCH_CHECK(false, message("act_and_mul: unknown layout '", name, "'; expected halves or interleaved"));
}

ClampMode parse_clamp(c10::string_view name, const std::optional<double>& limit) {
  ClampMode mode;
  if (name == "pre") {
    mode = ClampMode::kPre;
  } else if (name == "post") {
    mode = ClampMode::kPost;
  } else {
    TORCH_CHECK(false, message("act_and_mul: unknown clamp mode '", name, "'; expected pre or post"));
  }
  if (!limit.has_value()) return ClampMode::kNone;
  TORCH_CHECK(std::isfinite(*limit) && *limit > 0.0,
              message("act_and_mul: limit must be a finite number > 0 or None, got ", *limit));
  return mode;
}

// The stride between consecutive rows when the leading dimensions of `t` collapse into
// one row index without a copy; fails with a clear message otherwise.
int64_t row_stride(const at::Tensor& t, const char* what) {
  const int64_t dims = t.dim();
  int64_t stride = t.size(-1);  // a single row: any stride will do
  bool found = false;
  int64_t expected = 0;
  for (int64_t d = dims - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (!found) {
      stride = t.stride(d);
      found = true;
    } else {
      TORCH_CHECK(t.stride(d) == expected,
                  message("act_and_mul: the leading dimensions of ", what,
                          " cannot be flattened into rows without a copy (sizes ", t.sizes(), ", strides ",
                          t.strides(), "); pass ", what, ".contiguous()"));
    }
    expected = t.stride(d) * t.size(d);
  }
  return stride;
}

void check_last_dim_contiguous(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.size(-1) <= 1 || t.stride(-1) == 1,
              message("act_and_mul: the last dimension of ", what, " must be contiguous (stride 1), got stride ",
                      t.stride(-1), "; pass ", what, ".contiguous()"));
}

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), message("act_and_mul: x must be a CUDA tensor, got one on ", x.device()));
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              message("act_and_mul: x must be float32, float16 or bfloat16, got ", dtype));
  TORCH_CHECK(x.dim() >= 1, "act_and_mul: x must have at least one dimension ([..., 2D])");
  TORCH_CHECK(x.size(-1) % 2 == 0,
              message("act_and_mul: the last dimension of x must be even (gate and up), got ", x.size(-1)));
  TORCH_CHECK(x.size(-1) / 2 <= std::numeric_limits<int32_t>::max() / 2,
              message("act_and_mul: the last dimension of x is too large (", x.size(-1), ")"));
  check_last_dim_contiguous(x, "x");
}

void check_output(const at::Tensor& x, const at::Tensor& out) {
  TORCH_CHECK(out.device() == x.device(),
              message("act_and_mul: out must be on x's device (", x.device(), "), got ", out.device()));
  TORCH_CHECK(out.scalar_type() == x.scalar_type(),
              message("act_and_mul: out must have x's dtype (", x.scalar_type(), "), got ", out.scalar_type()));
  auto expected = x.sizes().vec();
  expected.back() /= 2;
  TORCH_CHECK(out.sizes().vec() == expected, message("act_and_mul: out must have shape ", c10::IntArrayRef(expected),
                                                     " for x of shape ", x.sizes(), ", got ", out.sizes()));
  check_last_dim_contiguous(out, "out");
  TORCH_CHECK(at::has_internal_overlap(out) != at::MemOverlap::Yes,
              "act_and_mul: out has elements that share memory (e.g. an expanded tensor)");
  at::assert_no_overlap(out, x);
}

enum class Fault { kNone, kClampOff, kGeluErf, kFminfClamp, kIgnoreRowStride };

Fault parse_fault(c10::string_view name) {
  if (name == "none") return Fault::kNone;
  if (name == "clamp_off") return Fault::kClampOff;
  if (name == "gelu_erf") return Fault::kGeluErf;
  if (name == "fminf_clamp") return Fault::kFminfClamp;
  if (name == "ignore_row_stride") return Fault::kIgnoreRowStride;
  TORCH_CHECK(false, message("act_and_mul: unknown fault '", name,
                             "'; expected none, clamp_off, gelu_erf, fminf_clamp or ignore_row_stride"));
}

// Whether silu uses __expf/__fdividef: "default" for 16-bit outputs only, "fast" always
// (silu only), "precise" never.
bool silu_math(c10::string_view math, Activation activation, at::ScalarType dtype) {
  if (math == "default") return activation == Activation::kSilu && dtype != at::kFloat;
  if (math == "precise") return false;
  TORCH_CHECK(math == "fast",
              message("act_and_mul: unknown math '", math, "'; expected default, fast or precise"));
  TORCH_CHECK(activation == Activation::kSilu, "act_and_mul: math='fast' exists for the silu activation only");
  return true;
}

at::Tensor& run(const at::Tensor& x, c10::string_view activation, double alpha, double beta,
                const std::optional<double>& limit, c10::string_view layout, c10::string_view clamp, int64_t max_blocks,
                int64_t items_per_block, Fault fault, at::Tensor& out, int64_t max_threads = 0,
                c10::string_view math = "default") {
  check_input(x);
  check_output(x, out);
  TORCH_CHECK(std::isfinite(alpha) && std::isfinite(beta),
              message("act_and_mul: alpha and beta must be finite, got ", alpha, " and ", beta));

  ActAndMulParams p;
  p.activation = parse_activation(activation);
  p.layout = parse_layout(layout);
  p.clamp = parse_clamp(clamp, limit);
  p.alpha = static_cast<float>(alpha);
  p.beta = static_cast<float>(beta);
  p.limit = limit.has_value() ? static_cast<float>(*limit) : 0.0f;
  p.width = x.size(-1) / 2;
  p.rows = p.width > 0 ? out.numel() / p.width : 0;
  if (p.rows == 0 || p.width == 0) return out;
  p.x_row_stride = row_stride(x, "x");
  p.out_row_stride = row_stride(out, "out");
  p.max_blocks = static_cast<int>(std::max<int64_t>(std::min<int64_t>(max_blocks, 1 << 30), -1));
  p.items_per_block = static_cast<int>(std::max<int64_t>(std::min<int64_t>(items_per_block, 1 << 30), 0));
  p.max_threads = static_cast<int>(std::max<int64_t>(std::min<int64_t>(max_threads, kMaxThreads), 0));
  p.fast_math = silu_math(math, p.activation, x.scalar_type());
  p.x = x.data_ptr();
  p.out = out.data_ptr();

  switch (fault) {
    case Fault::kNone: break;
    case Fault::kClampOff: p.clamp = ClampMode::kNone; break;
    case Fault::kGeluErf:
      if (p.activation == Activation::kGeluTanh) p.activation = Activation::kGelu;
      break;
    case Fault::kFminfClamp:
      TORCH_CHECK(p.activation == Activation::kSilu && p.clamp == ClampMode::kPre && math != "fast",
                  "act_and_mul: the fminf_clamp fault exists for silu with a pre clamp only, without math='fast'");
      p.nan_propagating_clamp = false;
      p.fast_math = false;  // its kernel is instantiated with the IEEE silu only
      break;
    case Fault::kIgnoreRowStride: p.x_row_stride = 2 * p.width; break;
  }

  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  cudaError_t err = cudaErrorInvalidValue;
  switch (x.scalar_type()) {
    case at::kFloat: err = launch_act_and_mul_fp32(p, stream); break;
    case at::kHalf: err = launch_act_and_mul_fp16(p, stream); break;
    case at::kBFloat16: err = launch_act_and_mul_bf16(p, stream); break;
    default: break;
  }
  C10_CUDA_CHECK(err);
  return out;
}

at::Tensor& act_and_mul_out(const at::Tensor& x, c10::string_view activation, double alpha, double beta,
                            std::optional<double> limit, c10::string_view layout, c10::string_view clamp,
                            at::Tensor& out) {
  return run(x, activation, alpha, beta, limit, layout, clamp, 0, 0, Fault::kNone, out);
}

at::Tensor act_and_mul(const at::Tensor& x, c10::string_view activation, double alpha, double beta,
                       std::optional<double> limit, c10::string_view layout, c10::string_view clamp) {
  check_input(x);
  auto shape = x.sizes().vec();
  shape.back() /= 2;
  at::Tensor out = at::empty(shape, x.options());
  run(x, activation, alpha, beta, limit, layout, clamp, 0, 0, Fault::kNone, out);
  return out;
}

at::Tensor& act_and_mul_variant(const at::Tensor& x, c10::string_view activation, double alpha, double beta,
                                std::optional<double> limit, c10::string_view layout, c10::string_view clamp,
                                int64_t max_blocks, int64_t items_per_block, c10::string_view fault,
                                int64_t max_threads, c10::string_view math, at::Tensor& out) {
  return run(x, activation, alpha, beta, limit, layout, clamp, max_blocks, items_per_block, parse_fault(fault), out,
             max_threads, math);
}

}  // namespace
}  // namespace swiglu_check

// A fragment, so that other parts of swiglu-check may add operators to the namespace too.
TORCH_LIBRARY_FRAGMENT(swiglu_check, m) {
  m.def(
      "act_and_mul(Tensor x, str activation=\"silu\", float alpha=1.0, float beta=0.0, float? limit=None, "
      "str layout=\"halves\", str clamp=\"pre\") -> Tensor");
  m.def(
      "act_and_mul.out(Tensor x, str activation=\"silu\", float alpha=1.0, float beta=0.0, float? limit=None, "
      "str layout=\"halves\", str clamp=\"pre\", *, Tensor(a!) out) -> Tensor(a!)");
  m.def(
      "_act_and_mul_variant(Tensor x, str activation, float alpha, float beta, float? limit, str layout, "
      "str clamp, int max_blocks, int items_per_block, str fault, int max_threads=0, str math=\"default\", *, "
      "Tensor(a!) out) -> Tensor(a!)");
}

// CUDA is the only real implementation. The CPU entries exist so a CPU tensor gets the
// one-line "must be a CUDA tensor" error rather than the dispatcher's long listing.
TORCH_LIBRARY_IMPL(swiglu_check, CUDA, m) {
  m.impl("act_and_mul", &swiglu_check::act_and_mul);
  m.impl("act_and_mul.out", &swiglu_check::act_and_mul_out);
  m.impl("_act_and_mul_variant", &swiglu_check::act_and_mul_variant);
}

TORCH_LIBRARY_IMPL(swiglu_check, CPU, m) {
  m.impl("act_and_mul", &swiglu_check::act_and_mul);
  m.impl("act_and_mul.out", &swiglu_check::act_and_mul_out);
  m.impl("_act_and_mul_variant", &swiglu_check::act_and_mul_variant);
}
