"""FP4 (E2M1) weight formats, exactly (DESIGN.md section 3, "FP4 weights").

- E2M1 codes: bit 3 is the sign, bits 2..1 the exponent (bias 1), bit 0 the mantissa;
  magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. Encoding rounds to nearest, ties to even
  (the code with mantissa bit 0), and saturates at +-6.
- Packing: two codes per byte along K, the even element in the low nibble (vLLM,
  PyTorch's `float4_e2m1fn_x2`, torchao, Triton).
- NVFP4: blocks of 16 along K; one float8_e4m3fn scale per block and one fp32 global
  scale per matrix: `global = amax / (6 * 448)`, `block = e4m3(block_amax / (6 * global))`,
  `w = e2m1 * float(block) * global`.
- MXFP4: blocks of 32 along K; one E8M0 byte `s` per block meaning `2**(s - 127)`
  (255 is NaN). The quantizer picks the smallest power of two with
  `block_amax / scale <= 6`, so no element saturates (the OCP spec's
  `floor(log2(amax)) - 2` rule would clip the largest elements instead).

Weights may carry leading batch dimensions (`[E, N, K]` for MoE experts): blocks run
along the last dimension, and NVFP4's global scale is one per `[N, K]` matrix.
Dequantization is exact in float64 (at most 2 + 4 + 24 significant bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

FORMATS = ("nvfp4", "mxfp4")
BLOCK_SIZE = {"nvfp4": 16, "mxfp4": 32}
E2M1_MAX = 6.0
E4M3_MAX = 448.0
E8M0_BIAS = 127
E8M0_NAN = 255
# magnitudes of codes 0..7; codes 8..15 are their negatives
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_VALUES = E2M1_MAGNITUDES + tuple(-v for v in E2M1_MAGNITUDES)
# Rounding thresholds between neighbouring magnitudes. Where the lower neighbour's code
# is even, a tie rounds down (`>`); where it is odd, a tie rounds up (`>=`).
_ROUND_DOWN_ON_TIE = (0.25, 1.25, 2.5, 5.0)  # lower neighbour codes 0, 2, 4, 6
_ROUND_UP_ON_TIE = (0.75, 1.75, 3.5)  # lower neighbour codes 1, 3, 5


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown FP4 format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def e2m1_encode(values: torch.Tensor) -> torch.Tensor:
    """Nearest E2M1 code (ties to even, saturating at +-6) of each value, as uint8 0..15.

    Negative values (and -0.0) get the sign bit, so values that round to zero keep
    their sign. NaN has no E2M1 code: it raises ValueError.
    """
    if values.is_floating_point() and bool(torch.isnan(values).any()):
        raise ValueError("E2M1 has no NaN: cannot encode NaN")
    mag = values.abs()
    code = torch.zeros(values.shape, dtype=torch.uint8, device=values.device)
    for threshold in _ROUND_DOWN_ON_TIE:
        code += (mag > threshold).to(torch.uint8)
    for threshold in _ROUND_UP_ON_TIE:
        code += (mag >= threshold).to(torch.uint8)
    negative = torch.signbit(values) if values.is_floating_point() else values < 0
    return code | (negative.to(torch.uint8) << 3)


def e2m1_table(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.tensor(E2M1_VALUES, dtype=dtype, device=device)


def e2m1_decode(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Values of E2M1 codes (uint8 0..15); code 8 is -0.0."""
    return e2m1_table(dtype, codes.device)[codes.to(torch.long)]


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """`[..., K]` codes -> `[..., K/2]` bytes, element 2i in the low nibble of byte i."""
    if codes.shape[-1] % 2:
        raise ValueError(f"the packed dimension must be even, got {codes.shape[-1]}")
    c = codes.to(torch.uint8)
    return (c[..., 0::2] & 0xF) | ((c[..., 1::2] & 0xF) << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of `pack_fp4`: `[..., K/2]` bytes -> `[..., K]` codes."""
    p = packed.to(torch.uint8)
    return torch.stack((p & 0xF, p >> 4), dim=-1).flatten(-2)


def e4m3_decode(scale_bytes: torch.Tensor) -> torch.Tensor:
    """float8_e4m3fn bytes -> float64."""
    return scale_bytes.view(torch.float8_e4m3fn).to(torch.float64)


def e8m0_decode(scale_bytes: torch.Tensor) -> torch.Tensor:
    """E8M0 bytes -> float64 `2**(s - 127)`; 255 is NaN."""
    exponent = scale_bytes.to(torch.float64) - E8M0_BIAS
    scale = torch.exp2(exponent)
    return torch.where(scale_bytes == E8M0_NAN, torch.full_like(scale, math.nan), scale)


@dataclass(frozen=True)
class FP4Weight:
    """A weight `[..., N, K]` in one FP4 format.

    packed: uint8 `[..., N, K/2]` (two E2M1 codes per byte, even element low);
    scales: uint8 `[..., N, K/block]` (float8_e4m3fn bytes for NVFP4, E8M0 for MXFP4);
    global_scale: float32 `[...]` (NVFP4: one per matrix; MXFP4: ones).
    """

    format: str
    packed: torch.Tensor
    scales: torch.Tensor
    global_scale: torch.Tensor

    def __post_init__(self) -> None:
        check_format(self.format)
        if self.packed.dtype != torch.uint8 or self.scales.dtype != torch.uint8:
            raise ValueError("packed codes and scales must be uint8 tensors")
        n, half_k = self.packed.shape[-2:]
        if tuple(self.scales.shape[:-1]) != tuple(self.packed.shape[:-1]):
            raise ValueError(f"scales {tuple(self.scales.shape)} do not match packed {tuple(self.packed.shape)}")
        if self.scales.shape[-1] * self.block != 2 * half_k:
            raise ValueError(
                f"{self.format}: K = {2 * half_k} needs {2 * half_k // self.block} scales per row"
                f" (blocks of {self.block}), got {self.scales.shape[-1]}"
            )
        if tuple(self.global_scale.shape) != tuple(self.packed.shape[:-2]):
            raise ValueError("global_scale must have one value per matrix")

    @property
    def block(self) -> int:
        return BLOCK_SIZE[self.format]

    @property
    def shape(self) -> tuple[int, ...]:
        """The logical shape `[..., N, K]`."""
        return (*self.packed.shape[:-1], 2 * self.packed.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.packed.device

    @property
    def nbytes(self) -> int:
        """Bytes a kernel must read: packed codes, block scales and global scales."""
        extra = self.global_scale.numel() * 4 if self.format == "nvfp4" else 0
        return self.packed.numel() + self.scales.numel() + extra

    def to(self, device: torch.device | str) -> "FP4Weight":
        return replace(
            self,
            packed=self.packed.to(device),
            scales=self.scales.to(device),
            global_scale=self.global_scale.to(device),
        )

    def __getitem__(self, index: int) -> "FP4Weight":
        """One matrix of a batched weight (e.g. one expert)."""
        return FP4Weight(self.format, self.packed[index], self.scales[index], self.global_scale[index])


def _blocks(w: torch.Tensor, block: int) -> torch.Tensor:
    if w.dim() < 2:
        raise ValueError(f"weights must be [..., N, K], got shape {tuple(w.shape)}")
    if w.shape[-1] % block:
        raise ValueError(f"K = {w.shape[-1]} is not a multiple of the block size {block}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("weights must be finite to be quantized")
    return w.to(torch.float64).reshape(*w.shape[:-1], w.shape[-1] // block, block)


def _encode_blocks(blocks: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Codes of `blocks / scale` (scale `[..., nblocks]`; zero scales give zero codes)."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = e2m1_encode(blocks / safe[..., None])
    codes = torch.where((scale > 0)[..., None], codes, torch.zeros_like(codes))
    return codes.flatten(-2)


def nvfp4_global_scale(w: torch.Tensor) -> torch.Tensor:
    """`amax / (6 * 448)` per `[N, K]` matrix, as float32 (1.0 for an all-zero matrix)."""
    amax = w.to(torch.float64).abs().amax(dim=(-2, -1))
    scale = (amax / (E2M1_MAX * E4M3_MAX)).to(torch.float32)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_nvfp4(w: torch.Tensor, global_scale: torch.Tensor | float | None = None) -> FP4Weight:
    """NVFP4: blocks of 16, e4m3 block scales, an fp32 global scale per matrix.

    `global_scale` defaults to `amax / (6 * 448)`, which puts the largest block scale
    at 448; a given one must be positive (block scales beyond 448 saturate there)."""
    blocks = _blocks(w, BLOCK_SIZE["nvfp4"])
    if global_scale is None:
        gscale = nvfp4_global_scale(w)
    else:
        gscale = torch.as_tensor(global_scale, dtype=torch.float32, device=w.device).expand(w.shape[:-2]).clone()
        if not bool(((gscale > 0) & torch.isfinite(gscale)).all()):
            raise ValueError("the NVFP4 global scale must be a finite positive number")
    g64 = gscale.to(torch.float64)[..., None, None]
    block_amax = blocks.abs().amax(dim=-1)
    block_scale = (block_amax / (E2M1_MAX * g64)).clamp(max=E4M3_MAX).to(torch.float8_e4m3fn)
    effective = block_scale.to(torch.float64) * g64
    codes = _encode_blocks(blocks, effective)
    return FP4Weight("nvfp4", pack_fp4(codes), block_scale.view(torch.uint8), gscale)


def quantize_mxfp4(w: torch.Tensor) -> FP4Weight:
    """MXFP4: blocks of 32, E8M0 scales, the smallest power of two with amax / scale <= 6."""
    blocks = _blocks(w, BLOCK_SIZE["mxfp4"])
    block_amax = blocks.abs().amax(dim=-1)
    # ceil(log2(amax / 6)) exactly: frexp gives amax/6 = m * 2**e with m in [0.5, 1)
    mantissa, exponent = torch.frexp(block_amax / E2M1_MAX)
    ceil_log2 = torch.where(mantissa == 0.5, exponent - 1, exponent)
    biased = torch.where(block_amax > 0, ceil_log2 + E8M0_BIAS, torch.zeros_like(ceil_log2))
    scale_bytes = biased.clamp(0, E8M0_NAN - 1).to(torch.uint8)
    codes = _encode_blocks(blocks, e8m0_decode(scale_bytes))
    ones = torch.ones(w.shape[:-2], dtype=torch.float32, device=w.device)
    return FP4Weight("mxfp4", pack_fp4(codes), scale_bytes, ones)


def quantize(w: torch.Tensor, fmt: str, **options: object) -> FP4Weight:
    """Quantize `[..., N, K]` weights to `fmt`, on w's device (the same bytes on any device:
    every step is exact or correctly rounded)."""
    w = w.detach()
    if check_format(fmt) == "nvfp4":
        return quantize_nvfp4(w, **options)  # type: ignore[arg-type]
    return quantize_mxfp4(w)


def block_scales(weight: FP4Weight) -> torch.Tensor:
    """The effective float64 multiplier of each block `[..., N, K/block]` (global included)."""
    if weight.format == "nvfp4":
        return e4m3_decode(weight.scales) * weight.global_scale.to(torch.float64)[..., None, None]
    return e8m0_decode(weight.scales)


def dequantize(weight: FP4Weight, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The weight values `[..., N, K]` (exact in float64)."""
    values = e2m1_decode(unpack_fp4(weight.packed), torch.float64)
    scales = block_scales(weight).repeat_interleave(weight.block, dim=-1)
    return (values * scales).to(dtype)
