"""W4A16: 16-bit activations times FP4 (NVFP4, MXFP4) weights, dequantized in registers.

- `gemm`: the Triton GEMM `y = x @ dequant(W)^T` (imports Triton: load it lazily);
- `configs`: the tile table per M bucket;
- `backends`: registration of the backends (no Triton import at load time).
"""
