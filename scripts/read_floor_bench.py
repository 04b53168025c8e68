#!/usr/bin/env python3
"""How fast can one kernel read N bytes once, by copy method? (GPU diagnostic)

The W4A16 GEMM at M = 1 is a read of its packed weights and scales (33 MB for NVFP4 at
4096x14336) plus a little math; this script times the read alone, three ways, beside a
bf16 cuBLAS 1xKxN matmul of the same run, to tell what the 3.0x target asks of the memory
system:

- `bulk`: TMA bulk copies (cp.async.bulk, one elected thread per CTA) of `piece` bytes into
  a ring of `stages` shared-memory buffers, full/empty mbarriers, 4 consumer warps reading
  every byte back; each CTA streams one contiguous range.
- `ldg`: every thread loads 16 bytes `unroll` times per step (ld.global.nc, no L1).
- `cpasync`: each warp streams its own contiguous range through a 4-stage cp.async ring of
  `piece` bytes per stage (the GEMM's per-warp ring with the tiled layout).

Times are CUDA-graph replays (as `swiglu-check bench --timing graph`) over input sets
rotated past the L2.

    python3 scripts/read_floor_bench.py [--bytes 33030144,29360128]
"""

from __future__ import annotations

import argparse
import statistics
import sys

SOURCE = r"""
#include <cstdint>
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void bar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void bar_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
  } while (!done);
}
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
}

constexpr int kConsumers = 4;
constexpr int kMaxStages = 16;

__global__ void bulk_kernel(const uint8_t* src, int64_t total, int64_t per_cta, int piece, int stages, uint32_t* out) {
  extern __shared__ __align__(128) uint8_t ring[];
  __shared__ __align__(8) uint64_t full[kMaxStages], empty[kMaxStages];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t begin = blockIdx.x * per_cta, end = min(total, begin + per_cta);
  const int count = begin < end ? static_cast<int>((end - begin + piece - 1) / piece) : 0;
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) { bar_init(&full[s], 1); bar_init(&empty[s], kConsumers); }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (warp == kConsumers) {  // producer
    if (lane == 0) {
      for (int n = 0; n < count; ++n) {
        const int s = n % stages;
        if (n >= stages) bar_wait(&empty[s], ((n / stages) - 1) & 1);
        const int64_t at = begin + static_cast<int64_t>(n) * piece;
        const uint32_t bytes = static_cast<uint32_t>(min(static_cast<int64_t>(piece), end - at));
        bar_expect(&full[s], bytes);
        bulk_copy(ring + s * piece, src + at, bytes, &full[s]);
      }
    }
    return;
  }
  uint32_t acc = 0;
  for (int n = 0; n < count; ++n) {
    const int s = n % stages;
    bar_wait(&full[s], (n / stages) & 1);
    const uint4* stage = reinterpret_cast<const uint4*>(ring + s * piece);
    for (int i = warp * 32 + lane; i < piece / 16; i += kConsumers * 32) { const uint4 v = stage[i]; acc ^= v.x ^ v.y ^ v.z ^ v.w; }
    __syncwarp();
    if (lane == 0) bar_arrive(&empty[s]);
  }
  if (acc == 0x12345678u) out[0] = acc;
}

template <int U>
__global__ void ldg_kernel(const uint4* src, int64_t n16, int64_t per_cta, uint32_t* out) {
  const int64_t begin = blockIdx.x * per_cta, end = min(n16, begin + per_cta);
  uint32_t acc = 0;
  for (int64_t i0 = begin + threadIdx.x; i0 < end; i0 += U * blockDim.x) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t i = i0 + u * blockDim.x;
      v[u] = make_uint4(0, 0, 0, 0);
      if (i < end) asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                                : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w) : "l"(src + i));
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) out[0] = acc;
}

// each warp: its own contiguous range, a 4-stage cp.async ring of `piece` bytes per stage
__global__ void cpasync_kernel(const uint8_t* src, int64_t total, int64_t per_warp, int piece, uint32_t* out) {
  extern __shared__ __align__(128) uint8_t ring[];
  constexpr int S = 4;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* my = ring + warp * S * piece;
  const int64_t begin = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + warp) * per_warp;
  const int64_t end = min(total, begin + per_warp);
  const int count = begin < end ? static_cast<int>((end - begin + piece - 1) / piece) : 0;
  auto issue = [&](int stage, int n) {
    for (int i = lane; i < piece / 16; i += 32) {
      const int64_t at = begin + static_cast<int64_t>(n) * piece + i * 16;
      const bool valid = at < end;
      asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;" ::"r"(smem_u32(my + stage * piece + i * 16)),
                   "l"(src + (valid ? at : 0)), "r"(valid ? 16 : 0));
    }
  };
  uint32_t acc = 0;
  for (int i = 0; i < S - 1; ++i) { if (i < count) issue(i, i); asm volatile("cp.async.commit_group;"); }
  for (int n = 0; n < count; ++n) {
    if (n + S - 1 < count) issue((n + S - 1) % S, n + S - 1);
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group %0;" ::"n"(S - 1));
    const uint4* stage = reinterpret_cast<const uint4*>(my + (n % S) * piece);
    for (int i = lane; i < piece / 16; i += 32) { const uint4 v = stage[i]; acc ^= v.x ^ v.y ^ v.z ^ v.w; }
  }
  asm volatile("cp.async.wait_group 0;");
  if (acc == 0x12345678u) out[0] = acc;
}

static int sm_count() {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return sms;
}

void bulk(torch::Tensor src, int64_t piece, int64_t stages, int64_t ctas_per_sm, torch::Tensor out) {
  TORCH_CHECK(piece % 16 == 0 && stages <= kMaxStages, "piece must be a multiple of 16, stages <= 16");
  const int64_t total = src.numel();
  const int grid = sm_count() * ctas_per_sm;
  int64_t per_cta = (total + grid - 1) / grid;
  per_cta = (per_cta + 15) / 16 * 16;
  const int smem = piece * stages;
  cudaFuncSetAttribute(bulk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  bulk_kernel<<<grid, (kConsumers + 1) * 32, smem, at::cuda::getCurrentCUDAStream()>>>(
      src.data_ptr<uint8_t>(), total, per_cta, piece, stages, reinterpret_cast<uint32_t*>(out.data_ptr<int>()));
  C10_CUDA_CHECK(cudaGetLastError());
}

void ldg(torch::Tensor src, int64_t unroll, int64_t ctas_per_sm, torch::Tensor out) {
  const int64_t n16 = src.numel() / 16;
  const int grid = sm_count() * ctas_per_sm;
  const int64_t per_cta = (n16 + grid - 1) / grid;
  const uint4* p = reinterpret_cast<const uint4*>(src.data_ptr<uint8_t>());
  uint32_t* o = reinterpret_cast<uint32_t*>(out.data_ptr<int>());
  auto stream = at::cuda::getCurrentCUDAStream();
  if (unroll == 4) ldg_kernel<4><<<grid, 256, 0, stream>>>(p, n16, per_cta, o);
  else if (unroll == 8) ldg_kernel<8><<<grid, 256, 0, stream>>>(p, n16, per_cta, o);
  else TORCH_CHECK(false, "unroll 4 or 8");
  C10_CUDA_CHECK(cudaGetLastError());
}

void cpasync(torch::Tensor src, int64_t piece, int64_t warps_total, torch::Tensor out) {
  const int64_t total = src.numel();
  int64_t per_warp = (total + warps_total - 1) / warps_total;
  per_warp = (per_warp + 15) / 16 * 16;
  const int smem = 4 * 4 * piece;
  cudaFuncSetAttribute(cpasync_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  cpasync_kernel<<<(warps_total + 3) / 4, 128, smem, at::cuda::getCurrentCUDAStream()>>>(
      src.data_ptr<uint8_t>(), total, per_warp, piece, reinterpret_cast<uint32_t*>(out.data_ptr<int>()));
  C10_CUDA_CHECK(cudaGetLastError());
}
"""
CPP = """
void bulk(torch::Tensor src, int64_t piece, int64_t stages, int64_t ctas_per_sm, torch::Tensor out);
void ldg(torch::Tensor src, int64_t unroll, int64_t ctas_per_sm, torch::Tensor out);
void cpasync(torch::Tensor src, int64_t piece, int64_t warps_total, torch::Tensor out);
"""
BULK = [(piece, stages, ctas) for piece in (4096, 8192, 16384, 32768) for stages in (2, 4, 8) for ctas in (1, 2, 4)
        if piece * stages * ctas <= 200 * 1024]
LDG = [(unroll, ctas) for unroll in (4, 8) for ctas in (4, 8)]
CPASYNC = [(piece, warps) for piece in (1152, 2304, 4608) for warps in (896, 1792, 3584)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", default="33030144,29360128", help="buffer sizes, comma-separated")
    parser.add_argument("--matmul", default="1x4096x14336", help="the cuBLAS MxKxN timed beside")
    args = parser.parse_args()
    import torch
    from torch.utils.cpp_extension import load_inline

    from swiglu_check import bench

    if not torch.cuda.is_available():
        print("read_floor_bench: needs a CUDA GPU", file=sys.stderr)
        return 2
    ext = load_inline("read_floor_bench", CPP, cuda_sources=SOURCE, functions=["bulk", "ldg", "cpasync"],
                      extra_cuda_cflags=["-O3", "-arch=sm_90a"], verbose=False)
    out = torch.zeros(1, dtype=torch.int32, device="cuda")

    def timed(fn, sets: int) -> float:
        return statistics.median(bench.time_graph(fn, sets)) * 1e3

    print(f"device {torch.cuda.get_device_name()}")
    m, k, n = (int(v) for v in args.matmul.split("x"))
    sets = bench.rotation_sets(k * n * 2)
    xs = [torch.randn(m, k, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]
    ws = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]
    cublas = timed(lambda i: torch.matmul(xs[i], ws[i].t()), sets)
    print(f"cuBLAS bf16 {args.matmul}: {cublas:.1f} us (3.0x of it: {cublas / 3:.1f} us)")
    del xs, ws
    rows = []
    for nbytes in (int(v) for v in args.bytes.split(",")):
        sets = bench.rotation_sets(nbytes)
        bufs = [torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device="cuda") for _ in range(sets)]
        dst = torch.empty_like(bufs[0])
        copy = timed(lambda i: dst.copy_(bufs[i]), sets)
        rows.append((nbytes, "copy (r+w)", copy, 2 * nbytes / copy / 1e3))
        for piece, stages, ctas in BULK:
            us = timed(lambda i: ext.bulk(bufs[i], piece, stages, ctas, out), sets)
            rows.append((nbytes, f"bulk piece={piece} stages={stages} ctas/sm={ctas}", us, nbytes / us / 1e3))
        for unroll, ctas in LDG:
            us = timed(lambda i: ext.ldg(bufs[i], unroll, ctas, out), sets)
            rows.append((nbytes, f"ldg unroll={unroll} ctas/sm={ctas}", us, nbytes / us / 1e3))
        for piece, warps in CPASYNC:
            us = timed(lambda i: ext.cpasync(bufs[i], piece, warps, out), sets)
            rows.append((nbytes, f"cpasync piece={piece} warps={warps}", us, nbytes / us / 1e3))
        del bufs, dst
    print(f"{'bytes':>10} {'method':<42} {'us':>7} {'GB/s':>6} {'x cuBLAS':>8}")
    for nbytes, method, us, gbs in rows:
        print(f"{nbytes:>10} {method:<42} {us:7.2f} {gbs:6.0f} {cublas / us:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
