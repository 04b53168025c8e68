"""Tile configurations of the W4A16 GEMM, picked per M bucket (no Triton import here).

`block_m == 1` selects the GEMV kernel (CUDA cores, one token per program); larger
values the tensor-core kernel, which computes the transposed tile `W_tile @ x_tile^T`
so that the small token count sits in the MMA's N dimension ("swap AB").

The table was tuned on an H100 (scripts/tune_w4a16.py, numbers in
kernels/w4a16/NOTES.md); split-K is chosen per shape (`split_target` programs).
`SWIGLU_CHECK_W4A16_TABLE=<json>` replaces the table (the tuner writes that file).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import tables

SPLIT_K_MAX = 8
TABLE_ENV = "SWIGLU_CHECK_W4A16_TABLE"  # a JSON table (scripts/tune_w4a16.py) replacing GPU_TABLE


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


# (largest M of the bucket, config) in increasing M; the last bucket takes every larger M.
# Written by scripts/tune_w4a16.py on the lent H100 (Triton 3.6, CUDA-graph timing;
# kernels/w4a16/NOTES.md).
GPU_TABLE: tuple[tuple[int, GemmConfig], ...] = (
    # tuned on the H100 (2026-11-22, device call 3 of the W4A16 work: scripts/tune_w4a16.py,
    # 91 s budget, CUDA-graph device time); the inline-PTX recipes 3 and 2 won there
    (1, GemmConfig(block_n=64, block_m=16, block_k=256, num_warps=4, num_stages=3, deq=3, split_target=264)),
    (16, GemmConfig(block_n=64, block_m=16, block_k=256, num_warps=4, num_stages=3, deq=3, split_target=264)),
    # session 8 (`tune_w4a16.py --ms 64 --deqs 2,4`, 108 configs x 4 splits): deq 4 won every
    # M = 64 case; of all (config, split target) pairs this one has the best worst case
    # against cuBLAS over the six (0.98x at 4096 x 4096, both formats; geometric mean 1.105x),
    # where the per-case best configs reach 0.98-1.02x there and 1.26-1.37x on the large shapes
    (1 << 30, GemmConfig(block_n=64, block_m=64, block_k=256, num_warps=4, num_stages=3, deq=4, split_target=132)),
)
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


def pick_config(m: int, n: int, k: int, *, interpreted: bool, block: int = 16) -> GemmConfig:
    """The config for one problem; `block` is the format's scale block (16 or 32)."""
    if interpreted:
        config = INTERPRETER_CONFIG
    else:
        config = tables.pick(tables.active_table(TABLE_ENV, GPU_TABLE, GemmConfig), m)
    if config.block_k % block:
        config = replace(config, block_k=_cdiv(config.block_k, block) * block)
    if config.split_k == 0:
        config = replace(config, split_k=choose_split_k(config, m, n, k))
    return config

