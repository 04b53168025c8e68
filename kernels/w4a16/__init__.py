"""W4A16: 16-bit activations times FP4 (NVFP4, MXFP4) weights, dequantized in registers.

- `gemm`: the Triton GEMM `y = x @ dequant(W)^T` (imports Triton: load it lazily);
- `configs`: the GEMM's tile tables per weight format and M bucket;
- `tables`: tuned config tables by size bucket (JSON form, environment override), shared
  by the Triton GEMM, the CUDA GEMM and the MoE;
- `moe`: the routed expert MLP with the clamped activation between two such GEMMs;
- `backends`: registration of the backends (no Triton import at load time).

Measurements and open work: NOTES.md.
"""
