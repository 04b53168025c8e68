"""The W4A16 GEMM in CUDA C++ (kernels/w4a16/cuda/), a torch operator built on first use.

    y = cuda_w4a16_matmul(x, weight)   # x [M, K] bf16/fp16, weight an FP4Weight [N, K]

Same math as the Triton GEMM (gemm.py): FP4 codes times block scales dequantized exactly
in registers, tensor-core products summed in fp32, NVFP4's global scale on the fp32
result, one rounding; split-K partials summed in split order. The kernel's header
(w4a16_gemm.cuh) explains the K permutation that lets every lane turn its own 16-byte
load straight into MMA operands. Needs K a multiple of 32; M is any (CTAs of up to 64
tokens, CudaGemmConfig.token_tiles). Built with the gated-activation extension's
machinery (kernels/cuda/build.py).
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from swiglu_check.kernels.cuda.build import BuildError, Extension, toolchain_problem
from swiglu_check.references.fp4 import FP4Weight, check_format

from . import tables

SOURCE_DIR = Path(__file__).resolve().parent / "cuda"
EXTENSION = Extension(
    "swiglu_check_w4a16_cuda", SOURCE_DIR,
    sources=("binding.cpp", "gemm_bf16_nvfp4.cu", "gemm_bf16_mxfp4.cu", "gemm_fp16_nvfp4.cu", "gemm_fp16_mxfp4.cu"),
    headers=("w4a16_gemm.h", "w4a16_gemm.cuh"),
)
K_MULTIPLE = 32  # 16-byte aligned packed rows; the kernel steps 128 elements, masking a partial last step
CHUNK = 128
WARPS = 8  # per CTA (kWarps)
FORMAT_IDS = {"nvfp4": 0, "mxfp4": 1}
# planted bugs for the tests, then diagnostics for the profiler and tuner scripts
# (w4a16_gemm.cuh), all computing a wrong y: "no-math" (the ring without decode or MMAs)
# times the kernel's memory and launch structure; "no-x-loads", "no-mma" and "no-decode"
# each leave one part of the math out (x's shared loads, the MMAs, the decode and scaling)
# and exist for the M <= 16 x-ring kernels only (M_16_DIAGNOSTICS)
PLANTS = {None: 0, "nibble-swap": 1, "scale-off-by-one": 2, "no-math": 3, "no-x-loads": 4, "no-mma": 5, "no-decode": 6}
M_16_DIAGNOSTICS = ("no-x-loads", "no-mma", "no-decode")
DIAGNOSTICS = ("no-math", *M_16_DIAGNOSTICS)  # the plants that are not planted bugs
K_WARPS = (1, 2, 4, 8)  # warps of a CTA along K that the kernels are instantiated for
AUTO_K_WARPS = 0  # CudaGemmConfig.k_warps: chosen per problem (resolve_k_warps)
SPLIT_K_MAX = 16  # the occupancy rule's largest split (the x budget may ask for more)
X_SHARED_BUDGET = 32 << 10  # bytes of x per CTA in shared memory (tokens of a group x its K range)
# the ring depths the kernels are instantiated for: 8 won two of 24 shapes by 1-2% in
# session 5 and doubled the build (223 s on the H100 with it, session 6), so it went
STAGES = (4,)  # the planted bugs and diagnostics too, with rows_per_warp 1 only
PRODUCER_STAGES = (4, 8)  # the producer-warp kernel's ring depths (CudaGemmConfig.producer)
PRODUCER_K_WARPS = (1, 2)  # its computing warps per 16-row tile (2: 16 computing warps, even and odd steps)
# most 8-token tiles per CTA: 4 and 8 (32, 64 tokens decode each weight once, not 2 or 4
# times) are instantiated with x_ring, k_warps 1 and 4 stages, and in the producer kernel
TOKEN_TILES = (1, 2, 4, 8)
AUTO_TOKEN_TILES = 0  # CudaGemmConfig.token_tiles of the producer kernel: chosen per problem (resolve_token_tiles)
# token_tiles 0: the first of these producer kernels (token tiles, k_warps, stages) whose
# CTAs keep at least AUTO_MIN_CHUNKS chunks of K each after the occupancy split, else the
# last. More tokens per CTA decode each weight for more of them, but leave fewer CTAs, which
# the split of K then makes up for, and a split's finish pays only over a long enough K.
# H100, session 16 (us, NVFP4, M = 64; the first pick in brackets): 4096x4096 (32 chunks;
# 32 row CTAs) 64 tokens 21.6 (split 4), 32 tokens 16.3 (split 2), 16 tokens 15.7 (no split,
# [picked]); 14336x4096 (112 chunks) 38.9, 37.0 [split 2: 56 chunks], 46.8; 4096x14336 (112
# row CTAs) 34.7 [no split], 41.0, 57.3 (448 CTAs, four waves).
AUTO_TOKEN_CONFIGS = ((8, 1, 4), (4, 1, 8), (2, 2, 8))
AUTO_MIN_CHUNKS = 32


def producer_kernel_exists(token_tiles: int, k_warps: int, stages: int, x_tensor: bool = False) -> bool:
    """Whether the producer kernel is built for this (w4a16_gemm.h, producer_instantiated):
    token tiles 1 or 2 with one or two computing warps per tile and 4 or 8 stages; 4 with
    one warp, 4 or 8 stages; 8 with one warp and 4 stages (8 would not fit shared memory
    with x's cp.async rows; with x_tensor's narrower rows they do)."""
    if token_tiles not in TOKEN_TILES or k_warps not in PRODUCER_K_WARPS or stages not in PRODUCER_STAGES:
        return False
    return token_tiles <= 2 or (k_warps == 1 and (token_tiles == 4 or stages == 4 or x_tensor))

__all__ = ["BuildError", "CudaGemmConfig", "availability", "cached_tiled_layout", "cuda_w4a16_matmul", "pick_config",
           "resolve_config", "resolve_k_warps", "resolve_token_tiles", "routed_rows_matmul", "tiled_layout"]


@dataclass(frozen=True)
class CudaGemmConfig:
    rows_per_warp: int = 2  # 16-row tiles per warp (1 or 2)
    ctas_per_sm: int = 4  # split-K aims at about this many CTAs per SM
    split_k: int = 0  # 0: from the shape (ctas_per_sm); else fixed
    stages: int = 4  # weight chunks in each warp's shared-memory ring (STAGES): S - 1 in flight
    # warps sharing a CTA's K range (1, 2, 4, 8; 0: resolve_k_warps): the CTA covers 128 / k_warps * rows_per_warp rows
    k_warps: int = 1
    tiled: bool = False  # read the weight in the tiled layout (tiled_layout: made once per weight, cached)
    x_ring: bool = False  # x streams through a ring shared by the CTA's warps (else the CTA stages it up front)
    # the most 8-token MMA tiles per CTA (TOKEN_TILES; above 2 only x_ring with k_warps 1, or
    # the producer kernel; 0 (AUTO_TOKEN_TILES): the producer kernel picks per problem,
    # resolve_token_tiles)
    token_tiles: int = 2
    # 4 warps of the CTA fill a CTA-wide ring of weights and x for 8 tiles of 16 rows with
    # k_warps computing warps each (PRODUCER_K_WARPS; w4a16_gemm.cuh, gemm_producer_kernel):
    # tiled, not x_ring, rows_per_warp 1, stages one of PRODUCER_STAGES; above 2 token tiles
    # k_warps 1 only, and 4 stages at 8 (an 8-stage ring of cp.async x rows would not fit
    # shared memory; x_tensor's narrower rows fit 8); the plain GEMM only (no routed rows)
    producer: bool = False
    # the producer kernel's x by the bulk tensor copy engine: one copy per stage from one
    # producer warp, instead of 16-byte cp.async pieces from four (w4a16_gemm.h, x_tensor)
    x_tensor: bool = False

    def __post_init__(self) -> None:
        if self.x_tensor and not self.producer:
            raise ValueError(f"bad CUDA W4A16 config {self}: x_tensor is a choice of the producer kernel")
        if self.producer:
            auto = self.token_tiles == AUTO_TOKEN_TILES
            if (not self.tiled or self.x_ring or self.rows_per_warp != 1 or self.ctas_per_sm < 1 or self.split_k < 0
                    or (auto and (self.split_k or self.k_warps not in PRODUCER_K_WARPS
                                  or self.stages not in PRODUCER_STAGES))
                    or (not auto and not producer_kernel_exists(self.token_tiles, self.k_warps, self.stages,
                                                                self.x_tensor))):
                raise ValueError(f"bad CUDA W4A16 config {self}: the producer kernel needs tiled, no x_ring,"
                                 f" rows_per_warp 1, k_warps one of {PRODUCER_K_WARPS} (1 above 2 token tiles),"
                                 f" token_tiles one of {TOKEN_TILES} or {AUTO_TOKEN_TILES} (auto, with split_k 0),"
                                 f" stages one of {PRODUCER_STAGES} (4 at token_tiles 8 without x_tensor), ctas_per_sm >= 1,"
                                 f" split_k >= 0")
            return
        if (self.rows_per_warp not in (1, 2) or self.stages not in STAGES
                or self.k_warps not in (*K_WARPS, AUTO_K_WARPS)
                or self.ctas_per_sm < 1 or self.split_k < 0 or (self.x_ring and not self.tiled)
                or self.token_tiles not in TOKEN_TILES
                or (self.token_tiles > 2 and (not self.x_ring or self.k_warps != 1))):
            raise ValueError(f"bad CUDA W4A16 config {self}: rows_per_warp 1 or 2, stages one of {STAGES},"
                             f" k_warps one of {K_WARPS} or {AUTO_K_WARPS} (auto), ctas_per_sm >= 1, split_k >= 0,"
                             f" x_ring only tiled,"
                             f" token_tiles one of {TOKEN_TILES} (above 2 only with x_ring and k_warps 1)")

    @property
    def rows_per_cta(self) -> int:
        """Weight rows one CTA covers (w4a16_gemm.h's cta_rows); k_warps resolved first. The
        producer kernel's CTA is 8 tiles whatever its computing warps per tile."""
        if self.producer:
            return WARPS * 16
        if self.k_warps == AUTO_K_WARPS:
            raise ValueError("k_warps 0 (auto) has no CTA size until resolve_k_warps picks one")
        return WARPS // self.k_warps * 16 * self.rows_per_warp

    @property
    def label(self) -> str:
        """Compact, parseable name (`from_label`), e.g. `r1k2c1s0p8tw`."""
        return (f"r{self.rows_per_warp}k{self.k_warps}c{self.ctas_per_sm}s{self.split_k}p{self.stages}"
                + ("t" if self.tiled else "") + ("x" if self.x_ring else "")
                + (f"m{self.token_tiles}" if self.token_tiles != 2 else "") + ("w" if self.producer else "")
                + ("v" if self.x_tensor else ""))

    LABEL_FORM = "rRkWcC[sS]pP[t][x][mT][w][v]"  # kW and sS may be left out (k_warps 1, split_k 0)

    @classmethod
    def from_label(cls, label: str) -> "CudaGemmConfig":
        """Inverse of `label`; ValueError (one line) for text of another form or a config no
        kernel is built for."""
        match = re.fullmatch(r"r(\d)(?:k(\d))?c(\d+)(?:s(\d+))?p(\d)(t?)(x?)(?:m(\d))?(w?)(v?)", label)
        if not match:
            raise ValueError(f"expected a CUDA W4A16 config label {cls.LABEL_FORM}, got {label!r}")
        return cls(rows_per_warp=int(match[1]), k_warps=int(match[2] or 1), ctas_per_sm=int(match[3]),
                   split_k=int(match[4] or 0), stages=int(match[5]), tiled=bool(match[6]), x_ring=bool(match[7]),
                   token_tiles=int(match[8] or 2), producer=bool(match[9]), x_tensor=bool(match[10]))


def token_tiles(m: int, max_tiles: int = 2) -> int:
    """8-token MMA tiles per CTA (w4a16_gemm.h's token_tiles): the fewest of 1, 2, 4, 8
    that hold M, at most `max_tiles`. More tokens run as several token groups, each
    decoding the weight tile again (its bytes come through L2: the groups of one tile are
    neighbours in the grid)."""
    tiles = 1
    while tiles < max_tiles and 8 * tiles < m:
        tiles *= 2
    return tiles


def output_tiles(m: int, n: int, rows_per_cta: int, max_tiles: int = 2) -> int:
    """CTAs per split: weight-row tiles of `rows_per_cta` rows times token groups."""
    return -(-n // rows_per_cta) * -(-m // (8 * token_tiles(m, max_tiles)))


def resolve_k_warps(config: CudaGemmConfig, m: int, n: int, sms: int, batches: int = 1) -> CudaGemmConfig:
    """`config` with k_warps 0 (auto) replaced by the fewest warps along K (K_WARPS) whose
    CTAs over the problem (`batches` GEMMs of M x N, no split of K) number at least
    `ctas_per_sm` per SM (the same aim as the split of K), or the most. Fewer warps along K give
    each warp longer runs of weights and no sums between warps; more give small N enough
    CTAs without split-K (H100, session 7's tuner: 1 x 4096 x 14336 15.6 us with 1 and 17.3
    with 4, 1 x 14336 x 4096 20.4 with 1 and 16.2 with 4; CTAs of 4 warps then). The M <= 1
    table entry aims at one CTA per SM (GPU_TABLES)."""
    if config.k_warps != AUTO_K_WARPS:
        return config
    for k_warps in K_WARPS:
        resolved = dataclasses.replace(config, k_warps=k_warps)
        if output_tiles(m, n, resolved.rows_per_cta, config.token_tiles) * batches >= config.ctas_per_sm * sms:
            return resolved
    return resolved


def resolve_token_tiles(config: CudaGemmConfig, m: int, n: int, k: int, sms: int) -> CudaGemmConfig:
    """`config` with token_tiles 0 (auto, the producer kernel) replaced by the first of
    AUTO_TOKEN_CONFIGS (token tiles, k_warps, stages) whose CTAs over the problem keep at
    least AUTO_MIN_CHUNKS chunks of K each after the occupancy split (choose_split_k), or by
    the last; any other config as it is."""
    if not config.producer or config.token_tiles != AUTO_TOKEN_TILES:
        return config
    chunks = -(-k // CHUNK)
    for tiles, k_warps, stages in AUTO_TOKEN_CONFIGS:
        resolved = dataclasses.replace(config, token_tiles=tiles, k_warps=k_warps, stages=stages)
        if -(-chunks // choose_split_k(m, n, k, resolved, sms)) >= AUTO_MIN_CHUNKS:
            break
    return resolved


def resolve_config(config: CudaGemmConfig, m: int, n: int, k: int, sms: int) -> CudaGemmConfig:
    """The config one M x K x N problem runs with: its per-problem choices (k_warps 0,
    token_tiles 0) made."""
    return resolve_token_tiles(resolve_k_warps(config, m, n, sms), m, n, k, sms)


def chunk_scale_bytes(fmt: str) -> int:
    """Scale bytes of one weight row per 128-element chunk (w4a16_gemm.h's chunk_scale_bytes)."""
    return CHUNK // (16 if fmt == "nvfp4" else 32)


def chunk_padded_scales(scales: torch.Tensor, fmt: str, k: int) -> torch.Tensor:
    """The block scales (`[..., N, K/block]`, any leading expert dims) as the kernel copies
    them: every row whole chunks long (zero bytes after K's last block; the weights there
    are zero-filled too), rows contiguous and aligned to a chunk's scale bytes. `scales`
    itself when K % 128 == 0 and its rows are contiguous and aligned, else a padded copy
    (K % 128 != 0 costs one per call)."""
    per_chunk = chunk_scale_bytes(fmt)
    width = -(-k // CHUNK) * per_chunk
    if (scales.shape[-1] == width and scales.stride(-1) == 1 and scales.data_ptr() % per_chunk == 0
            and all(stride % per_chunk == 0 for stride in scales.stride()[:-1])):
        return scales
    padded = torch.zeros((*scales.shape[:-1], width), dtype=scales.dtype, device=scales.device)
    padded[..., :scales.shape[-1]] = scales
    return padded


def tile_bytes(fmt: str) -> int:
    """Bytes of one 16-row tile over one chunk in the tiled layout (w4a16_gemm.h's ring_tile_bytes)."""
    return 16 * CHUNK // 2 + 16 * chunk_scale_bytes(fmt)


# Where the tiled layout keeps each code's (mantissa, exponent low, exponent high, sign) bits
# in a 32-bit word, by element 0..7 of the word (w4a16_gemm.cuh, placed_pairs): elements
# 2j and 2j + 1 form pair j in the low and high 16 bits, placed so that one shift or one
# multiply and a mask turn the pair into a bf16x2 operand (pair 0 already at the bf16 bits).
PLACED_BITS = ((6, 7, 8, 15), (22, 23, 24, 31), (3, 4, 5, 12), (19, 20, 21, 28),
               (0, 1, 2, 14), (16, 17, 18, 30), (9, 10, 11, 13), (25, 26, 27, 29))


def placed_words(codes: torch.Tensor) -> torch.Tensor:
    """Packed code bytes (last dim a multiple of 4; a 32-bit word's nibble i is its element
    i, the even element in a byte's low nibble) with each word's bits moved to PLACED_BITS."""
    words = codes.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    placed = torch.zeros_like(words)
    for element, positions in enumerate(PLACED_BITS):
        for bit, position in enumerate(positions):
            placed |= ((words >> (4 * element + bit)) & 1) << position
    placed = torch.where(placed >= 1 << 31, placed - (1 << 32), placed)  # two's complement int32
    return placed.to(torch.int32).view(torch.uint8)


def tiled_layout(weight: FP4Weight) -> torch.Tensor:
    """The weight (`[..., N, K]`) in the kernel's tiled layout: uint8 `[..., ceil(N/16),
    chunks, tile_bytes]`, each piece one warp's ring stage for one 16-row tile and one
    128-element chunk exactly as the kernel keeps it in shared memory. Lane (g, c)'s 16
    bytes of rows g and g + 8 (bytes 16c .. 16c + 15 of the rows' chunk), lanes in order,
    then the 16 rows' scale bytes of the chunk in lane order: lane (g, c)'s blocks of row
    g, then of row g + 8 (NVFP4 blocks 2c, 2c + 1; MXFP4 block c), so that one 4- or
    2-byte load gives a lane its scales (w4a16_gemm.cuh, scale_offset). Rows past N and
    elements past K are zero.
    Each 32-bit word of codes keeps its 8 codes' bits at PLACED_BITS (`placed_words`).
    A warp then copies each chunk as one contiguous run (the rows layout reads 16 runs of
    64 bytes and 16 scale pieces of 8 or 4). Same bits, rearranged: made once per weight
    (`cached_tiled_layout`), as an inference engine does when it loads weights.

    The pieces are stored chunk-major (chunk q of every tile, then chunk q + 1), and the
    `[..., tiles, chunks, tile_bytes]` view of them returned: the kernel reads them through
    the strides, and its CTAs, which walk their tiles' chunks in step, then sweep memory
    together. Against each tile's chunks as one run, on the H100 (session 8, same run):
    NVFP4 M = 1 15.6 -> 15.3 us at 4096x14336 and 16.0 -> 15.4 at 14336x4096; MXFP4 and
    M = 16, 64 within 1-2% either way."""
    *lead, n, half = weight.packed.shape
    k = 2 * half
    chunks = -(-k // CHUNK)
    tiles = -(-n // 16)
    per_chunk = chunk_scale_bytes(weight.format)
    dims = len(lead)
    # zero rows past N, zero bytes past K; rows 16t + 8h + g, bytes 64q + 16c + b -> [t, q, h, g, c, b]
    codes = torch.nn.functional.pad(weight.packed, (0, chunks * CHUNK // 2 - half, 0, tiles * 16 - n))
    codes = codes.reshape(*lead, tiles, 2, 8, chunks, 4, 16)
    codes = codes.permute(*range(dims), dims, dims + 3, dims + 1, dims + 2, dims + 4, dims + 5)
    codes = placed_words(codes.reshape(*lead, tiles, chunks, 16 * CHUNK // 2))
    scales = torch.nn.functional.pad(chunk_padded_scales(weight.scales, weight.format, k), (0, 0, 0, tiles * 16 - n))
    # rows 16t + 8h + g, bytes per_chunk * q + spl * c + b (spl blocks per lane) -> [t, q, g, c, h, b]
    spl = per_chunk // 4
    scales = scales.reshape(*lead, tiles, 2, 8, chunks, 4, spl)
    scales = scales.permute(*range(dims), dims, dims + 3, dims + 2, dims + 4, dims + 1, dims + 5)
    scales = scales.reshape(*lead, tiles, chunks, 16 * per_chunk)
    return torch.cat([codes, scales], dim=-1).transpose(-3, -2).contiguous().transpose(-3, -2)


# id(weight.packed) -> (weakref to it, its version, the scales' identity and version, tiled)
_TILED: dict[int, tuple] = {}


def cached_tiled_layout(weight: FP4Weight) -> torch.Tensor:
    """`tiled_layout(weight)`, computed on the first call for this weight and reused while
    its packed codes and scales are the same tensors, unmodified (torch's version counter
    moves on every in-place write); dropped with the codes."""
    key = id(weight.packed)
    entry = _TILED.get(key)
    stamp = (weight.packed._version, id(weight.scales), weight.scales._version)
    if entry is not None and entry[0]() is weight.packed and entry[1] == stamp:
        return entry[2]
    tiled = tiled_layout(weight)
    _TILED[key] = (weakref.ref(weight.packed, lambda _, key=key: _TILED.pop(key, None)), stamp, tiled)
    return tiled


def x_shared_bytes(m: int, k: int, split: int) -> int:
    """Shared memory a CTA's x slice takes (tokens x `x_row_bytes` of w4a16_gemm.h)."""
    chunks = -(-k // CHUNK)
    per_split = -(-chunks // split)
    return min(m, 8 * token_tiles(m)) * (per_split * CHUNK * 2 + 64)


def min_split_for_x(m: int, k: int) -> int:
    """The smallest split of K whose x slice fits X_SHARED_BUDGET (each CTA stages its
    tokens' x over its K range in shared memory)."""
    chunks = -(-k // CHUNK)
    split = 1
    while split < chunks and x_shared_bytes(m, k, split) > X_SHARED_BUDGET:
        split += 1
    return split


def choose_split_k(m: int, n: int, k: int, config: CudaGemmConfig, sms: int, batches: int = 1) -> int:
    """The largest power-of-two split of K (at most SPLIT_K_MAX, at least two 128-chunks
    per split) that keeps the grid (`batches` GEMMs of M x N, e.g. routed rows) within
    `ctas_per_sm * sms` CTAs; at least the split whose x slice fits the shared-memory budget
    where the CTA stages x up front (not with x_ring nor the producer kernel)."""
    if config.split_k:
        return config.split_k
    tiles = output_tiles(m, n, config.rows_per_cta, config.token_tiles) * batches
    chunks = -(-k // CHUNK)
    split = 1
    while (split * 2 <= SPLIT_K_MAX and tiles * split * 2 <= config.ctas_per_sm * sms
           and chunks // (split * 2) >= 2):
        split *= 2
    return split if config.x_ring or config.producer else max(split, min_split_for_x(m, k))


# Per weight format, (largest M of the bucket, config); scripts/tune_w4a16_cuda.py writes such
# a table as JSON and `SWIGLU_CHECK_W4A16_CUDA_TABLE=<file>` replaces these (one list of rows
# for both formats, or {"nvfp4": [rows], "mxfp4": [rows]}: tables.active_tables).
# Measured on the H100 (2026-11-22, sessions 6 to 9 with CTAs of 4 warps: scripts/tune_w4a16_cuda.py, CUDA-graph
# device time, the config with the smallest geometric mean over the bench shapes of each M;
# kernels/w4a16/NOTES.md). The tiled layout won every shape; x through the CTA's ring won
# every shape above M = 1 (16x4096x14336: 31.5 -> 22.7 us) and lost every M = 1 shape (its
# per-step barrier). At M = 1 one warp along K won at N = 14336 (15.6 us against 17.3 with
# four) and four at N = 4096 (16.2 against 20.4 at K = 14336): k_warps 0 picks per shape
# (resolve_k_warps). 32 or 64 tokens per CTA (token_tiles 4, 8) won single shapes at M = 32
# and 64 but not the M = 64 geometric mean.
# Session 9, after the shared memory was aligned (calls 15-17, 1x4096x14336, one warp / two /
# four along K): NVFP4 14.4-14.7 / 14.4-14.6 / 14.7-15.0 us, MXFP4 15.8-16.0 / 15.2-15.3 /
# 14.7-14.9; four won the other M = 1 shapes for both formats. So MXFP4 takes four at M = 1
# and NVFP4 keeps the per-shape pick.
# Session 10: CTAs of 8 warps (kWarps; 4 before), the auto k_warps aiming at ctas_per_sm CTAs
# per SM. Call 4 (tuner, 8 against 4 warps, two runs each; us): 1x4096x14336 NVFP4 14.2 (two
# warps along K, 64 rows per CTA) against 14.0-14.4 (4 warps), MXFP4 14.2-14.4 against
# 14.5-14.6; 1x14336x4096 (eight along K) NVFP4 14.4-14.6 against 14.9-15.0, MXFP4 14.2-14.4
# against 15.1-15.2. Both formats aim at one CTA per SM at M = 1 (two warps along K at N =
# 14336, eight at N = 4096). M <= 16 (x ring): two warps along K, two CTAs per SM, 19.0 / 22.1
# / 12.7 us at 16x4096x14336 / 16x14336x4096 / 16x4096x4096 NVFP4 (4 warps, one along K:
# 19.1 / 22.1 / 12.4; one along K with 8 warps is 18.6 / 22.1 / 12.6, the same geometric
# mean). M = 64 (call 6; the Triton GEMM is the faster one there): one warp along K, two CTAs
# per SM, the best geometric mean of 12 configs: 64x4096x4096 / 64x4096x14336 / 64x14336x4096
# NVFP4 19.2 / 55.8 / 51.6 us (4 warps, call 3's bench: 20.1 / 52.0 / 53.9).
# The MoE's routed rows take the M = 1 entry: at one token (six 4096 x 4096 and 4096 x 2048
# expert rows) 8 warps cost 41.1 -> 42.7 us (NVFP4) and 42.7 -> 47.6 (MXFP4) in calls 3 and
# 5; aiming those at two CTAs per SM did not win it back (44.5, 46.3; call 6).
_M1 = CudaGemmConfig(rows_per_warp=1, k_warps=AUTO_K_WARPS, ctas_per_sm=1, stages=4, tiled=True)
# Session 13: the producer-warp kernel (4 warps copy, 8 compute; one CTA per SM, 4 stages)
# took M = 2 to 16 (call 6, same run, against the x ring at two warps along K, two CTAs per
# SM; us, NVFP4 / MXFP4): 16x4096x14336 17.6 / 18.4 against 18.9 / 19.5, 16x14336x4096 21.5
# / 22.1 against 22.8 / 22.9, 16x4096x4096 12.7 / 12.9 against 12.9 / 13.1, 8x4096x14336
# 15.0 / 15.7 against 17.4 / 18.5. Eight stages were no faster (17.4 / 20.0 at 16x4096x14336).
# Session 14: two computing warps per tile (even and odd steps; 16 computing warps) and 8
# stages (.tmp probe, one run, NVFP4 / MXFP4 us, one warp 4 stages against two warps 8
# stages): 16x4096x14336 17.4 / 18.9 against 16.3 / 17.4, 16x14336x4096 19.3 / 20.3 against
# 18.7 / 19.1, 16x4096x4096 10.6 / 11.1 against 10.5 / 11.0, 8x4096x14336 15.3 / 16.6
# against 14.6 / 15.2.
# It also took M = 17 to 64 (token groups of 16; same probe, NVFP4 / MXFP4 us, producer
# against the x ring entry below): 64x4096x4096 15.8 / 17.5 against 18.1 / 20.5,
# 64x14336x4096 47.7 / 48.8 against 49.7 / 54.7, 64x4096x14336 56.7 / 61.6 against 55.3 /
# 60.8 (the geometric mean of the three: 35.0 / 37.5 against 36.8 / 40.9), 32x4096x4096 12.5
# / 12.7 against 13.3 / 13.0, 32x4096x14336 29.2 / 31.4 against 28.9 / 30.8. Above 64 tokens
# nothing was measured, so the x ring keeps them.
_M2_TO_16 = CudaGemmConfig(rows_per_warp=1, k_warps=2, ctas_per_sm=1, stages=8, tiled=True, producer=True)
# Session 16: the producer kernel at 32 and 64 tokens per CTA (one token group: each weight
# decoded once) where the problem leaves each CTA 32 chunks or more, else the 16-token
# groups above (resolve_token_tiles). H100 tuner, same run, NVFP4 / MXFP4 us, the picked
# kernel against 16-token groups: 64x4096x14336 34.7 / 33.7 against 57.3 / 61.7 (cuBLAS
# 44.3), 64x14336x4096 37.0 / 38.6 against 46.8 / 48.7 (cuBLAS 46.6), 32x4096x14336 21.2 /
# 21.9 against 29.1 / 31.5 (cuBLAS 44.3); 64x4096x4096 and 32x4096x4096 keep the 16-token
# groups (15.8 / 16.7 and 12.4 / 12.8).
# Session 17: x by the bulk tensor copy engine (x_tensor: one copy per stage from one producer
# warp instead of cp.async pieces from four). .tmp probe, one run, H100, NVFP4 / MXFP4 us, the
# auto pick with x_tensor against without (cuBLAS): 64x4096x14336 28.5 / 29.1 against 33.9 /
# 34.0 (44.5), 64x14336x4096 35.0 / 37.5 against 37.8 / 39.2 (46.4), 64x4096x4096 15.4 / 16.2
# against 15.9 / 16.6 (14.8 / 15.1), 32x4096x14336 20.6 / 21.7 against 21.8 / 22.5 (44.4),
# 48x14336x4096 34.5 / 37.5 against 37.6 / 39.7 (45.8). At M = 16 it lost (16x4096x14336
# k2 s8 17.0 against 16.6, 16x14336x4096 20.1 against 18.8), so M <= 16 keeps cp.async.
_M17_TO_64 = dataclasses.replace(_M2_TO_16, token_tiles=AUTO_TOKEN_TILES, x_tensor=True)
_ABOVE_64 = CudaGemmConfig(rows_per_warp=1, k_warps=1, ctas_per_sm=2, stages=4, tiled=True, x_ring=True)
_BOTH = ((1, _M1), (16, _M2_TO_16), (64, _M17_TO_64), (1 << 30, _ABOVE_64))  # one table for both formats since session 10
GPU_TABLES: dict[str, tuple[tuple[int, CudaGemmConfig], ...]] = {"nvfp4": _BOTH, "mxfp4": _BOTH}
TABLE_ENV = "SWIGLU_CHECK_W4A16_CUDA_TABLE"


def pick_config(m: int, fmt: str) -> CudaGemmConfig:
    """The launch configuration for M tokens on weights of format `fmt`, from its table."""
    return tables.pick_by_format(TABLE_ENV, GPU_TABLES, CudaGemmConfig, check_format(fmt), m)


def availability() -> tuple[bool, str]:
    """(ok, why not) without building."""
    problem = toolchain_problem()
    if problem:
        return False, problem
    failed = EXTENSION.failure()
    return (False, failed) if failed else (True, "")


_COUNTERS: dict[torch.device, torch.Tensor] = {}


def _counters(device: torch.device, size: int) -> torch.Tensor:
    """Zeroed per-tile arrival counters; the kernel leaves them zero (one stream at a time)."""
    buf = _COUNTERS.get(device)
    if buf is None or buf.numel() < size:
        buf = torch.zeros(max(size, 1 << 14), dtype=torch.int32, device=device)
        _COUNTERS[device] = buf
    return buf


def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def check_supported(x: torch.Tensor, weight: FP4Weight) -> None:
    """Raise ValueError (one line) for what this kernel does not take."""
    if not isinstance(weight, FP4Weight):
        raise TypeError(f"weight must be an FP4Weight, got {type(weight).__name__}")
    if x.dim() != 2 or weight.packed.dim() != 2:
        raise ValueError(f"x must be [M, K] and the weight one [N, K] matrix, got {tuple(x.shape)}"
                         f" and {tuple(weight.shape)}")
    if x.dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"x must be bf16 or fp16, got {x.dtype}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"K mismatch: x has {x.shape[1]}, the weight {weight.shape[1]}")
    if x.shape[1] % K_MULTIPLE:
        raise ValueError(f"the CUDA W4A16 GEMM needs K a multiple of {K_MULTIPLE}, got {x.shape[1]}")
    if x.device.type != "cuda" or weight.device != x.device:
        raise ValueError(f"x and the weight must be on one CUDA device, got {x.device} and {weight.device}")


def check_plant_exists(plant: str | None, m: int, config: CudaGemmConfig) -> None:
    """Raise ValueError (one line) for a diagnostic no kernel of this config and M has."""
    if plant in M_16_DIAGNOSTICS and not (config.x_ring and token_tiles(m, config.token_tiles) == 2):
        raise ValueError(f"the {plant!r} diagnostic exists for the x-ring kernels of 9 to 16 tokens per CTA only"
                         f" (x_ring and M from 9 to 16, or more with token_tiles 2); got M = {m}, {config.label}")


def cuda_w4a16_matmul(x: torch.Tensor, weight: FP4Weight, *, config: CudaGemmConfig | None = None,
                      plant: str | None = None) -> torch.Tensor:
    """`x @ dequant(weight)^T` in x's dtype (fp32 accumulation, one rounding)."""
    check_supported(x, weight)
    if plant not in PLANTS:
        raise ValueError(f"unknown planted bug {plant!r}")
    m, k = x.shape
    n = weight.shape[0]
    cfg = config or pick_config(m, weight.format)
    if plant is not None:  # plants: R = 1 only
        cfg = dataclasses.replace(cfg, rows_per_warp=1)
    check_plant_exists(plant, m, cfg)
    EXTENSION.ensure_loaded()
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return y
    sms = _sm_count(x.device)
    cfg = resolve_config(cfg, m, n, k, sms)
    split = choose_split_k(m, n, k, cfg, sms)
    _launch(x, weight, y, m, cfg, split, _empty_int(x.device), None, PLANTS[plant])
    return y


def _empty_int(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int32, device=device)


def _launch(x: torch.Tensor, weight: FP4Weight, y: torch.Tensor, m: int, cfg: CudaGemmConfig, split: int,
            row_expert: torch.Tensor, row_weight: torch.Tensor | None, plant: int) -> None:
    """The kernel on `y`: operands made contiguous and aligned where they are not, split-K
    buffers per GEMM (one GEMM of M tokens, or one per routed row in `row_expert`)."""
    k, n = x.shape[1], weight.shape[-2]
    batches = max(row_expert.numel(), 1)
    if x.stride(1) != 1 or x.stride(0) % 8 or x.data_ptr() % 16:
        x = x.contiguous()
    if cfg.tiled:  # scales inside the tiles
        packed, scales = cached_tiled_layout(weight), torch.empty(0, dtype=torch.uint8, device=x.device)
    else:
        packed = weight.packed
        if packed.stride(-1) != 1 or packed.data_ptr() % 16 or any(stride % 16 for stride in packed.stride()[:-1]):
            packed = packed.contiguous()
        scales = chunk_padded_scales(weight.scales, weight.format, k)
    if split > 1:
        partials = torch.empty(batches * split * m * n, dtype=torch.float32, device=x.device)
        counters = _counters(x.device, batches * output_tiles(m, n, cfg.rows_per_cta, cfg.token_tiles))
    else:
        partials = counters = y  # unused by the kernel
    weights = _empty_int(x.device).float() if row_weight is None else \
        row_weight.reshape(-1).to(torch.float32).contiguous()
    torch.ops.swiglu_check_w4a16.gemm_(
        x, packed, scales, weight.global_scale.reshape(-1).to(torch.float32).contiguous(), y, partials, counters,
        row_expert, weights, FORMAT_IDS[weight.format], cfg.rows_per_warp, cfg.stages, cfg.k_warps, split, plant,
        int(cfg.tiled), int(cfg.x_ring), cfg.token_tiles, 2 if cfg.x_tensor else int(cfg.producer))


def routed_rows_matmul(x: torch.Tensor, weight: FP4Weight, row_expert: torch.Tensor,
                       row_weight: torch.Tensor | None = None, *, out: torch.Tensor | None = None,
                       config: CudaGemmConfig | None = None) -> torch.Tensor:
    """The MoE's expert GEMM at a few tokens: row r of the result (fp32, or `out`'s dtype:
    fp32 or x's) is `x[r // (R // X)] @ dequant(weight[row_expert[r]])^T`, times
    `row_weight[r]` if given.

    `weight` holds E experts ([E, N, K]); x is [X, K] bf16/fp16 with R = len(row_expert)
    a multiple of X (GEMM1: the token of each routed row; GEMM2: the routed rows' own
    activations, X = R). One launch: every routed row is an M = 1 GEMM of its own (grid
    z), so each expert's bytes are read once per row that routes to it: made for the
    decode case, where a token's top-k experts are distinct."""
    if not isinstance(weight, FP4Weight) or weight.packed.dim() != 3:
        raise ValueError("weight must be an FP4Weight of [E, N, K] experts")
    if config is not None and config.producer:
        raise ValueError(f"the producer kernel takes no routed rows; got {config.label}")
    rows = row_expert.numel()
    _, n, k = weight.shape
    if x.dim() != 2 or x.shape[1] != k or x.dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"x must be [X, {k}] bf16/fp16, got {tuple(x.shape)} {x.dtype}")
    if x.shape[1] % K_MULTIPLE:
        raise ValueError(f"the CUDA W4A16 GEMM needs K a multiple of {K_MULTIPLE}, got {x.shape[1]}")
    if x.device.type != "cuda" or weight.device != x.device or row_expert.device != x.device:
        raise ValueError("x, the weight and row_expert must be on one CUDA device")
    if out is not None and (out.shape != (rows, n) or out.dtype not in (torch.float32, x.dtype)):
        raise ValueError(f"out must be [{rows}, {n}] fp32 or {x.dtype}, got {tuple(out.shape)} {out.dtype}")
    EXTENSION.ensure_loaded()
    y = torch.empty((rows, n), dtype=torch.float32, device=x.device) if out is None else out
    if rows == 0 or n == 0:
        return y
    sms = _sm_count(x.device)
    cfg = resolve_k_warps(config or pick_config(1, weight.format), 1, n, sms, batches=rows)
    split = choose_split_k(1, n, k, cfg, sms, batches=rows)
    _launch(x, weight, y, 1, cfg, split, row_expert.reshape(-1).to(torch.int32).contiguous(), row_weight, 0)
    return y
