#!/usr/bin/env python3
"""How fast can warps stream a packed weight matrix, by access pattern? (GPU diagnostic)

Reads an [N, K/2] uint8 matrix the way the W4A16 GEMM does (each warp owns 16 rows and
walks K in steps; cp.async into a per-warp shared-memory ring of 4 steps) with no math,
for several bytes-per-row-per-step (`run`): the GEMM's chunk of 128 elements is a 64-byte
run; `L2 fetch` is cp.async's L2::128B / L2::256B prefetch-size hint. Prints GB/s beside a device copy of the same bytes, to tell whether the GEMM's
memory time is set by its access pattern.

    python3 scripts/weight_stream_bench.py [--shapes 4096x14336,14336x4096]
"""

from __future__ import annotations

import argparse
import statistics
import sys

SOURCE = r"""
#include <cstdint>
template <int RUN, int S, int PREFETCH>
__global__ void stream_kernel(const uint8_t* w, int64_t row_bytes, int n_rows, int steps_per_split, uint32_t* out) {
  extern __shared__ uint4 ring[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kPieces = 16 * RUN / 16;          // 16-byte pieces per step of a warp (16 rows)
  constexpr int kPerLane = kPieces / 32;
  uint4* my = ring + warp * S * kPieces;
  const int row0 = (blockIdx.x * 4 + warp) * 16;
  const int step0 = blockIdx.y * steps_per_split;
  const int total_steps = static_cast<int>(row_bytes / RUN);
  const int step_end = min(total_steps, step0 + steps_per_split);
  auto issue = [&](int stage, int step) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int piece = i * 32 + lane;              // consecutive lanes: consecutive 16 bytes of one row
      const int row = piece / (RUN / 16), col = piece % (RUN / 16);
      const uint8_t* src = w + int64_t(min(row0 + row, n_rows - 1)) * row_bytes + int64_t(step) * RUN + col * 16;
      const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(my + stage * kPieces + piece));
      if constexpr (PREFETCH == 256) asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(dst), "l"(src));
      else if constexpr (PREFETCH == 128) asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(dst), "l"(src));
      else asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
    }
  };
  uint32_t acc = 0;
  for (int i = 0; i < S - 1; ++i) { if (step0 + i < step_end) issue(i, step0 + i); asm volatile("cp.async.commit_group;"); }
  for (int step = step0, i = 0; step < step_end; ++step, i = (i + 1) % S) {
    if (step + S - 1 < step_end) issue((i + S - 1) % S, step + S - 1);
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group %0;" ::"n"(S - 1));
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) { const uint4 v = my[i * kPieces + k * 32 + lane]; acc ^= v.x ^ v.y ^ v.z ^ v.w; }
  }
  asm volatile("cp.async.wait_group 0;");
  if (acc == 0x12345678u) out[0] = acc;  // keeps the reads; practically never stored
}

void stream(torch::Tensor w, int64_t run, int64_t prefetch, int64_t split, torch::Tensor out) {
  const int n = w.size(0);
  const int64_t row_bytes = w.size(1);
  const int steps = row_bytes / run;
  const int per_split = (steps + split - 1) / split;
  dim3 grid((n + 63) / 64, split);
  auto stream_ = at::cuda::getCurrentCUDAStream();
  const uint8_t* p = w.data_ptr<uint8_t>();
  uint32_t* o = reinterpret_cast<uint32_t*>(out.data_ptr<int>());
  const int smem = 4 * 4 * 16 * run;
#define LAUNCH(R, P) \
  do { \
    cudaFuncSetAttribute(stream_kernel<R, 4, P>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem); \
    stream_kernel<R, 4, P><<<grid, 128, smem, stream_>>>(p, row_bytes, n, per_split, o); \
  } while (0)
  if (run == 64 && prefetch == 0) LAUNCH(64, 0);
  else if (run == 64 && prefetch == 128) LAUNCH(64, 128);
  else if (run == 64 && prefetch == 256) LAUNCH(64, 256);
  else if (run == 128 && prefetch == 0) LAUNCH(128, 0);
  else if (run == 128 && prefetch == 256) LAUNCH(128, 256);
  else if (run == 256 && prefetch == 0) LAUNCH(256, 0);
  else if (run == 512 && prefetch == 0) LAUNCH(512, 0);
  else TORCH_CHECK(false, "no kernel for this run and prefetch");
  C10_CUDA_CHECK(cudaGetLastError());
}
"""
# (bytes per row per step, cp.async L2 prefetch size: 0 none, 128 or 256 bytes)
VARIANTS = ((64, 0), (64, 128), (64, 256), (128, 0), (128, 256), (256, 0), (512, 0))
CPP = "void stream(torch::Tensor w, int64_t run, int64_t prefetch, int64_t split, torch::Tensor out);"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x14336,14336x4096", help="KxN,...")
    parser.add_argument("--splits", default="1,2,4")
    args = parser.parse_args()
    import torch
    from torch.utils.cpp_extension import load_inline

    from swiglu_check import bench

    if not torch.cuda.is_available():
        print("weight_stream_bench: needs a CUDA GPU", file=sys.stderr)
        return 2
    ext = load_inline("weight_stream_bench", CPP, cuda_sources=SOURCE.replace(
        "#include <cstdint>", "#include <cstdint>\n#include <torch/extension.h>\n#include <ATen/cuda/CUDAContext.h>\n"
        "#include <c10/cuda/CUDAException.h>"), functions=["stream"],
        extra_cuda_cflags=["-O3", "-arch=sm_90"], verbose=False)
    out = torch.zeros(1, dtype=torch.int32, device="cuda")

    def timed(fn, sets: int) -> float:
        """Median us per call (CUDA events; call i uses input set i % sets)."""
        return statistics.median(bench.time_call(fn, sets)) * 1e3

    print(f"device {torch.cuda.get_device_name()}")
    print(f"{'K x N':>12} {'split':>5} {'run B':>6} {'L2 fetch':>9} {'us':>7} {'GB/s':>7} {'% copy':>7}")
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        sets = bench.rotation_sets(n * k // 2)  # rotated past the L2, as in `bench`
        ws = [torch.randint(0, 255, (n, k // 2), dtype=torch.uint8, device="cuda") for _ in range(sets)]
        w = ws[0]
        dst = torch.empty_like(w)
        copy_us = timed(lambda i: dst.copy_(ws[i]), sets)
        copy_gbs = 2 * w.numel() / copy_us / 1e3
        print(f"{shape:>12} {'copy':>5} {'':>6} {'':>9} {copy_us:7.1f} {copy_gbs:7.0f} {'(r+w)':>7}")
        for split in (int(s) for s in args.splits.split(",")):
            for run, prefetch in VARIANTS:
                us = timed(lambda i: ext.stream(ws[i], run, prefetch, split, out), sets)
                gbs = w.numel() / us / 1e3
                print(f"{shape:>12} {split:5d} {run:6d} {prefetch:9d} {us:7.1f} {gbs:7.0f} {100 * gbs / copy_gbs:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
