"""Tile configurations of the W4A16 GEMM, per weight format and M bucket (no Triton import here).

`block_m == 1` selects the GEMV kernel (CUDA cores, one token per program); larger
values the tensor-core kernel, which computes the transposed tile `W_tile @ x_tile^T`
so that the small token count sits in the MMA's N dimension ("swap AB").

There is one table per weight format (`GPU_TABLES`), tuned on an H100
(scripts/tune_w4a16.py, numbers in kernels/w4a16/NOTES.md); split-K is chosen per shape
(`split_target` programs). `SWIGLU_CHECK_W4A16_TABLE=<json>` replaces the tables: one list
of rows for both formats or `{"nvfp4": [rows], "mxfp4": [rows]}` (tables.py `tables_json`;
the tuner writes that file).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from swiglu_check.references.fp4 import BLOCK_SIZE, check_format

from . import tables

SPLIT_K_MAX = 8
TABLE_ENV = "SWIGLU_CHECK_W4A16_TABLE"  # JSON tables (scripts/tune_w4a16.py) replacing GPU_TABLES


@dataclass(frozen=True)
class GemmConfig:
    block_n: int  # output features per program
    block_m: int  # tokens per program (1: the GEMV kernel)
    block_k: int  # K elements per loop step (a multiple of the format's block size)
    split_k: int = 0  # 0: choose from the shape (split_target); else the number of K splits
    num_warps: int = 4
    num_stages: int = 3
    # dequantization recipe (kernels/w4a16/gemm.py, `_dequant_block`): 0 scales in fp32, 1 in
    # the activation dtype, 2 inline PTX, 3 inline PTX in a K-permuted order, 4 = 2 with
    # contiguous scale loads and NVFP4's e4m3 scales converted in inline PTX
    deq: int = 0
    split_target: int = 0  # split-K aims at this many programs (0: never split)

    @property
    def label(self) -> str:
        return (f"n{self.block_n}m{self.block_m}k{self.block_k}s{self.split_k}"
                f"w{self.num_warps}p{self.num_stages}d{self.deq}")


# Per weight format (fp4.FORMATS), (largest M of the bucket, config) in increasing M; the
# last bucket takes every larger M. Written by scripts/tune_w4a16.py on the lent H100
# (Triton 3.6, CUDA-graph timing; kernels/w4a16/NOTES.md).
# M <= 16: tuned on the H100 (2026-11-22, device call 3 of the W4A16 work: scripts/tune_w4a16.py,
# 91 s budget, CUDA-graph device time); the inline-PTX recipes 3 and 2 won there.
_M16 = GemmConfig(block_n=64, block_m=16, block_k=256, num_warps=4, num_stages=3, deq=3, split_target=264)
# M > 16: session 8, device call 5 (`tune_w4a16.py --ms 64 --deqs 2,4`, 108 configs x 4 split
# targets; x = cuBLAS time / ours over 64x4096x14336, 64x14336x4096, 64x4096x4096): deq 4 won
# every M = 64 case, and over both formats together these tiles with split target 132 had the
# best worst case (0.98x at 4096 x 4096; geometric mean 1.105x), where the per-case best configs
# reach 0.98-1.02x there and 1.26-1.37x on the large shapes. Per format, same tiles: NVFP4's
# best worst case stays target 132 (1.01x, 1.23x, 0.98x); MXFP4 at 264 (K split in 4 instead of
# 2 on the last two shapes) gives 1.29x, 1.33x, 1.02x (worst 1.02, geometric mean 1.21) against
# 1.29x, 1.18x, 0.98x at 132 (worst 0.98, geometric mean 1.14). These per-format figures come
# from that tuning run's stored data and are not yet re-run in a bench.
_M64 = GemmConfig(block_n=64, block_m=64, block_k=256, num_warps=4, num_stages=3, deq=4, split_target=132)
GPU_TABLES: dict[str, tuple[tuple[int, GemmConfig], ...]] = {
    "nvfp4": ((1, _M16), (16, _M16), (1 << 30, _M64)),
    "mxfp4": ((1, _M16), (16, _M16), (1 << 30, replace(_M64, split_target=264))),
}

# The interpreter runs one program at a time in numpy: small tiles keep CPU runs fast.
INTERPRETER_CONFIG = GemmConfig(block_n=16, block_m=16, block_k=64, split_k=1, num_warps=4, num_stages=1)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def choose_split_k(config: GemmConfig, m: int, n: int, k: int) -> int:
    """The power-of-two split of K that brings the grid closest to `split_target`
    programs from below, keeping at least two BLOCK_K steps per split."""
    if config.split_target <= 0:
        return 1
    programs = _cdiv(n, config.block_n) * (m if config.block_m == 1 else _cdiv(m, config.block_m))
    split = 1
    while (split * 2 <= SPLIT_K_MAX and programs * split * 2 <= config.split_target
           and k // (split * 2) >= 2 * config.block_k):
        split *= 2
    return split


def pick_config(m: int, n: int, k: int, *, interpreted: bool, fmt: str) -> GemmConfig:
    """The config for one `m x k x n` problem on weights of format `fmt` (nvfp4 or mxfp4):
    its table's bucket (INTERPRETER_CONFIG when interpreted), block_k rounded up to the
    format's scale block, split-K chosen from the shape when the config leaves it open."""
    block = BLOCK_SIZE[check_format(fmt)]
    if interpreted:
        config = INTERPRETER_CONFIG
    else:
        config = tables.pick_by_format(TABLE_ENV, GPU_TABLES, GemmConfig, fmt, m)
    if config.block_k % block:
        config = replace(config, block_k=_cdiv(config.block_k, block) * block)
    if config.split_k == 0:
        config = replace(config, split_k=choose_split_k(config, m, n, k))
    return config

