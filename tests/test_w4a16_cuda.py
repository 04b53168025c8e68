"""The CUDA C++ W4A16 GEMM backends (`w4a16-nvfp4-cuda`, `w4a16-mxfp4-cuda`).

Without a GPU: the sources compile for sm_90 with the real build's flags and no register
spills, the binding compiles against torch's headers, the split-K choice, and the
backends listed as unavailable with the reason. With one (`gpu` marker): exactness
against the float64 product on the same dequantized weights over shapes that exercise
every path (token tiles 1/2/4/8 and several token groups, rows past N, a partial last K
chunk, split-K), determinism, both planted bugs FAIL through the runner, and the real
backends PASS.
"""

from __future__ import annotations

import dataclasses

import functools
import itertools
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.backends import REGISTRY
from swiglu_check.cli import cli
from swiglu_check.kernels.w4a16 import cuda_gemm, tables
from swiglu_check.kernels.w4a16.backends import gemm_backend
from swiglu_check.kinds.linear_w4a16 import random_fp4_weight
from swiglu_check.kinds.w4a16_common import ideal_output
from swiglu_check.references import fp4
from test_cuda_compile import NVCC, _start_binding_check, _start_nvcc

COMPILED_SOURCES = ("gemm_bf16_nvfp4.cu", "gemm_fp16_mxfp4.cu")  # both dtypes, both formats
# per source and token tile count (1, 2), three x and weight paths (rows layout with x staged
# per CTA; tiled layout with x staged or in the CTA's ring), each ((rows per warp 1, 2) + the
# 2 plants and the diagnostic (rows per warp 1)) x (warps along K 1, 2, 4, 8), 4 ring stages;
# then token tiles 4 and 8 with the x ring and one warp along K only; then the M = 9-16
# diagnostics (x ring, 4 warp counts); then the producer-warp kernel, (the product, 2 plants,
# no-math) for each of: token tiles 1, 2 x stages 4, 8 x computing warps per tile 1, 2; token
# tiles 4 x stages 4, 8 with one warp per tile; token tiles 8, 4 stages, one warp; and with x
# by tensor copy the same but token tiles 8 with 4 and 8 stages
KERNELS_PER_SOURCE = 2 * 3 * (2 + 3) * 4 + 2 * (2 + 3) + 3 * 4 + (2 * 2 * 2 + 2 + 1) * 4 + (2 * 2 * 2 + 2 + 2) * 4


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = tmp_path_factory.mktemp("w4a16-cuda-compile")
    jobs = {}
    if NVCC is not None:
        jobs = {name: _start_nvcc(cuda_gemm.SOURCE_DIR / name, workdir) for name in COMPILED_SOURCES}
    binding = _start_binding_check(workdir, cuda_gemm.SOURCE_DIR / "binding.cpp")
    if binding is not None:
        jobs["binding.cpp"] = binding
    return {name: (p.communicate(timeout=600)[0], p.returncode) for name, p in jobs.items()}


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")
@pytest.mark.parametrize("source", COMPILED_SOURCES)
def test_kernels_compile_for_sm90_without_spills(compiled: dict, source: str) -> None:
    output, returncode = compiled[source]
    assert returncode == 0, f"nvcc failed on {source}:\n{output}"
    entries = re.findall(r"Compiling entry function '(\S+)' for 'sm_90'", output)
    assert len(entries) == KERNELS_PER_SOURCE, output
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", output)
    assert spills and all(int(n) == 0 for n in spills), f"register spills in {source}:\n{output}"


def test_binding_compiles_against_torch_headers(compiled: dict) -> None:
    if "binding.cpp" not in compiled:
        pytest.skip("no C++ compiler or no CUDA headers found")
    output, returncode = compiled["binding.cpp"]
    assert returncode == 0, f"binding.cpp does not compile:\n{output}"


def test_extension_lists_every_source_that_exists() -> None:
    ext = cuda_gemm.EXTENSION
    assert set(ext.kernel_sources) == {p.name for p in cuda_gemm.SOURCE_DIR.glob("gemm_*.cu")}
    for name in ext.sources + ext.headers:
        assert (cuda_gemm.SOURCE_DIR / name).is_file(), name


def test_split_k_fills_the_gpu_without_starving_a_split() -> None:
    cfg = cuda_gemm.CudaGemmConfig(rows_per_warp=2, k_warps=2, ctas_per_sm=4)  # 4 row groups of 32 rows
    # 4096 rows / 128 per CTA = 32 tiles; 132 SMs x 4 = 528 CTAs -> split 16 (32 x 16 = 512)
    assert cuda_gemm.choose_split_k(1, 4096, 14336, cfg, 132) == 16
    # 14336 rows: 112 tiles -> split 4 (448 CTAs) at M = 8; 16 tokens' x over K / 4 would
    # take 16 x (8 chunks x 256 + 64) bytes, over the 32 KB budget: split 5
    assert cuda_gemm.choose_split_k(8, 14336, 4096, cfg, 132) == 4
    assert cuda_gemm.x_shared_bytes(16, 4096, 4) == 16 * (8 * 256 + 64) > cuda_gemm.X_SHARED_BUDGET
    assert cuda_gemm.choose_split_k(16, 14336, 4096, cfg, 132) == 5
    # x streaming through the CTA's ring takes no slice of K: occupancy alone decides
    assert cuda_gemm.choose_split_k(16, 14336, 4096, dataclasses.replace(cfg, tiled=True, x_ring=True), 132) == 4
    assert cuda_gemm.choose_split_k(100, 4096, 4096, dataclasses.replace(cfg, tiled=True, x_ring=True), 132) == 2
    # one token over K = 14336: 28.7 KB of x, no split needed for it
    assert cuda_gemm.min_split_for_x(1, 14336) == 1
    # K of 256 (2 chunks): no split leaves a split with fewer than two chunks
    assert cuda_gemm.choose_split_k(1, 128, 256, cfg, 132) == 1
    assert cuda_gemm.choose_split_k(1, 128, 512, cfg, 132) == 2
    # more tokens: 7 groups of 16 per weight tile (224 CTAs) would split 2 for occupancy, but
    # 16 tokens' x over half of K is 64 KB: the x budget asks for 5
    assert cuda_gemm.choose_split_k(100, 4096, 4096, cfg, 132) == 5
    assert cuda_gemm.choose_split_k(1, 4096, 4096, cuda_gemm.CudaGemmConfig(split_k=3), 132) == 3
    assert cuda_gemm.output_tiles(100, 1000, 64) == 16 * 7
    assert cuda_gemm.output_tiles(8, 1000, 128) == 8
    # eight warps along K: a CTA covers 16 rows (r1) or 32 (r2), eight times the tiles
    narrow = cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=8, ctas_per_sm=4)
    assert narrow.rows_per_cta == 16 and cuda_gemm.CudaGemmConfig(rows_per_warp=2, k_warps=4).rows_per_cta == 64
    assert cuda_gemm.CudaGemmConfig(rows_per_warp=1).rows_per_cta == 16 * cuda_gemm.WARPS == 128
    # 14336 rows / 16 = 896 tiles already fill 4 x 132 CTAs: no split
    assert cuda_gemm.choose_split_k(1, 14336, 4096, narrow, 132) == 1
    assert cuda_gemm.choose_split_k(1, 4096, 14336, narrow, 132) == 2


def test_auto_k_warps_take_the_fewest_that_give_every_sm_ctas_per_sm_ctas() -> None:
    auto = cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=0, ctas_per_sm=1, tiled=True)
    assert auto.label == "r1k0c1s0p4t"
    with pytest.raises(ValueError, match="resolve_k_warps"):
        _ = auto.rows_per_cta
    # 14336 rows / 128 per CTA = 112 CTAs < 132 SMs; / 64 (two warps along K) = 224
    assert cuda_gemm.resolve_k_warps(auto, 1, 14336, 132).k_warps == 2
    # 4096 rows: 32 CTAs with 1, 64 with 2, 128 with 4 (< 132), 256 with 8
    assert cuda_gemm.resolve_k_warps(auto, 1, 4096, 132).k_warps == 8
    assert cuda_gemm.resolve_k_warps(auto, 1, 4096, 100).k_warps == 4
    # routed rows multiply the CTAs: 3 rows of a 2048-row expert GEMM need 4 (48, 96, 192 CTAs), 6 rows 2
    assert cuda_gemm.resolve_k_warps(auto, 1, 2048, 132, batches=3).k_warps == 4
    assert cuda_gemm.resolve_k_warps(auto, 1, 2048, 132, batches=6).k_warps == 2
    # too small for any: the most warps along K
    assert cuda_gemm.resolve_k_warps(auto, 1, 64, 132).k_warps == 8
    # two CTAs per SM: 224 CTAs with two warps fall short of 264, 448 with four do not
    two = dataclasses.replace(auto, ctas_per_sm=2)
    assert cuda_gemm.resolve_k_warps(two, 1, 14336, 132).k_warps == 4
    assert cuda_gemm.resolve_k_warps(two, 1, 4096, 132).k_warps == 8
    assert cuda_gemm.resolve_k_warps(two, 1, 2048, 132, batches=6).k_warps == 4
    fixed = cuda_gemm.CudaGemmConfig(k_warps=2)
    assert cuda_gemm.resolve_k_warps(fixed, 1, 64, 132) is fixed
    with pytest.raises(ValueError, match="bad CUDA W4A16 config"):
        cuda_gemm.CudaGemmConfig(k_warps=0, tiled=True, x_ring=True, token_tiles=8)


def test_token_tiles_take_the_fewest_that_hold_m_up_to_the_config() -> None:
    assert [cuda_gemm.token_tiles(m) for m in (1, 8, 9, 16, 17, 64)] == [1, 1, 2, 2, 2, 2]
    assert [cuda_gemm.token_tiles(m, 8) for m in (1, 8, 9, 16, 17, 32, 33, 64, 65, 300)] == [1, 1, 2, 2, 4, 4, 8, 8, 8, 8]
    assert cuda_gemm.token_tiles(64, 4) == 4
    # 64 tokens: one group of 64 instead of four of 16, so a quarter of the CTAs per split
    wide = cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True, token_tiles=8)
    assert wide.label == "r1k1c4s0p4txm8" and cuda_gemm.CudaGemmConfig().label == "r2k1c4s0p4"
    assert cuda_gemm.output_tiles(64, 14336, 64, 8) == 224 == cuda_gemm.output_tiles(64, 14336, 64) // 4
    assert cuda_gemm.output_tiles(100, 1000, 64, 8) == 16 * 2
    # 128 rows per CTA, 112 CTAs: split 4 reaches 448 <= 4 x 132; the 16-token groups' 448 CTAs take no split
    assert cuda_gemm.choose_split_k(64, 14336, 4096, wide, 132) == 4
    assert cuda_gemm.choose_split_k(64, 14336, 4096, dataclasses.replace(wide, token_tiles=2), 132) == 1


@pytest.mark.parametrize("fmt, k", [("nvfp4", 4096), ("nvfp4", 4128), ("mxfp4", 4096), ("mxfp4", 160)])
def test_scales_are_padded_to_whole_chunks_only_when_needed(fmt: str, k: int) -> None:
    block = 16 if fmt == "nvfp4" else 32
    scales = torch.randint(0, 120, (5, k // block), dtype=torch.uint8)
    padded = cuda_gemm.chunk_padded_scales(scales, fmt, k)
    per_chunk = cuda_gemm.chunk_scale_bytes(fmt)
    assert per_chunk == 128 // block
    assert padded.shape == (5, -(-k // 128) * per_chunk)
    assert torch.equal(padded[:, :k // block], scales)
    assert not padded[:, k // block:].any()  # zero bytes past K's last block
    assert padded.stride(0) % per_chunk == 0 and padded.data_ptr() % per_chunk == 0
    if k % 128 == 0:
        assert padded.data_ptr() == scales.data_ptr()  # no copy when the rows are whole chunks
    # a column slice (rows not contiguous at a chunk multiple) is copied, not passed through
    wide = torch.randint(0, 120, (5, k // block + 3), dtype=torch.uint8)
    sliced = cuda_gemm.chunk_padded_scales(wide[:, 1:1 + k // block], fmt, k)
    assert torch.equal(sliced[:, :k // block], wide[:, 1:1 + k // block])


def placed_word_bytes(raw: list[int]) -> list[int]:
    """Four packed bytes (codes 2b, 2b + 1 in byte b's low and high nibble) as the tiled
    layout stores them: code i's bit j at cuda_gemm.PLACED_BITS[i][j], little-endian."""
    word = 0
    for i in range(8):
        code = (raw[i // 2] >> (4 * (i % 2))) & 0xF
        for j, position in enumerate(cuda_gemm.PLACED_BITS[i]):
            word |= ((code >> j) & 1) << position
    return list(word.to_bytes(4, "little"))


def test_placed_bits_fill_a_word_once() -> None:
    positions = [p for bits in cuda_gemm.PLACED_BITS for p in bits]
    assert sorted(positions) == list(range(32))


def emulate_placed_pairs(words: torch.Tensor, fp16: bool) -> torch.Tensor:
    """w4a16_gemm.cuh's placed_pairs, operation for operation, on int64 words (uint32 values):
    [..., 4 pairs] 32-bit bf16x2 (or f16x2) bit patterns."""
    m32 = 0xFFFFFFFF
    pair = 0x81C081C0
    p = [words & pair, (words << 3) & m32 & pair, ((words & 0x40074007) * 0x42) & m32 & pair,
         ((words >> 3) & 0x01C001C0) | ((words << 2) & m32 & 0x80008000)]
    if fp16:
        p = [((v & 0x01C001C0) << 3) | (v & 0x80008000) for v in p]
    return torch.stack(p, dim=-1)


@pytest.mark.parametrize("fp16", [False, True], ids=["bf16", "fp16"])
def test_kernel_decoder_turns_placed_words_into_neighbouring_pairs(fp16: bool) -> None:
    """Every code in every position: the kernel's integer decoder on placed words gives pair j
    = (element 2j, element 2j + 1) as 16-bit floats equal to code * 2^-126 (bf16) or
    code * 2^-14 (fp16), the value that the unbias and scale multiplies then finish."""
    g = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 256, (4096, 4), dtype=torch.uint8, generator=g)
    raw[:16, :] = torch.arange(16, dtype=torch.uint8).repeat_interleave(17)[:64].reshape(16, 4)  # every code
    placed = cuda_gemm.placed_words(raw)
    assert placed.tolist() == [placed_word_bytes(r) for r in raw.tolist()]
    words = placed.view(torch.int32).to(torch.int64).reshape(-1) & 0xFFFFFFFF
    pairs = emulate_placed_pairs(words, fp16)  # [words, 4]
    halves = torch.stack([pairs & 0xFFFF, pairs >> 16], dim=-1).reshape(-1, 8)  # [words, element]
    as16 = torch.where(halves >= 1 << 15, halves - (1 << 16), halves).to(torch.int16)
    values = as16.view(torch.float16 if fp16 else torch.bfloat16).double() * (2.0**14 if fp16 else 2.0**126)
    codes = torch.stack([raw & 0xF, raw >> 4], dim=-1).reshape(-1, 8).long()
    assert torch.equal(values, fp4.e2m1_decode(codes, torch.float64))


@pytest.mark.parametrize("fmt, n, k", [("nvfp4", 40, 4096), ("mxfp4", 16, 160), ("nvfp4", 3, 96)])
def test_tiled_layout_places_every_byte_where_the_kernel_reads_it(fmt: str, n: int, k: int) -> None:
    """Element by element from the layout's definition: piece (tile t, chunk q) holds at
    lane (g, c) = (lane // 4, lane % 4), half h the 16 bytes 64q + 16c .. of row 16t + 8h + g
    (each 4-byte word's codes at PLACED_BITS), then the 16 rows' scale bytes of chunk q with
    lane (g, c)'s together: its blocks of row g, then of row g + 8; zeros past N and past K."""
    g = torch.Generator().manual_seed(n + k)
    weight = random_fp4_weight(fmt, n, k, "cpu", g)
    tiled = cuda_gemm.tiled_layout(weight)
    per_chunk = cuda_gemm.chunk_scale_bytes(fmt)
    chunks, tiles = -(-k // 128), -(-n // 16)
    assert tiled.shape == (tiles, chunks, cuda_gemm.tile_bytes(fmt)) and tiled.dtype == torch.uint8
    packed, scales = weight.packed.tolist(), weight.scales.tolist()
    for t in range(tiles):
        for q in range(chunks):
            piece = tiled[t, q].tolist()
            for h in range(2):
                for lane in range(32):
                    row, col = 16 * t + 8 * h + lane // 4, 64 * q + 16 * (lane % 4)
                    raw = [packed[row][col + b] if row < n and col + b < k // 2 else 0 for b in range(16)]
                    want = [byte for w in range(4) for byte in placed_word_bytes(raw[4 * w:4 * w + 4])]
                    assert piece[(h * 32 + lane) * 16:(h * 32 + lane + 1) * 16] == want, (t, q, h, lane)
            spl = per_chunk // 4  # blocks per lane and row
            for lane in range(32):
                want = []
                for h in range(2):
                    row = 16 * t + 8 * h + lane // 4
                    for b in range(spl):
                        block = q * per_chunk + spl * (lane % 4) + b
                        want.append(scales[row][block] if row < n and block < len(scales[0]) else 0)
                assert piece[1024 + lane * 2 * spl:1024 + (lane + 1) * 2 * spl] == want, (t, q, lane)


@pytest.mark.parametrize("experts", [None, 3])
def test_tiled_layout_is_stored_chunk_major(experts: int | None) -> None:
    """The [tiles, chunks, bytes] pieces lie chunk q of every tile, then chunk q + 1 (per
    expert), each piece contiguous: what the kernel's strides (binding.cpp) take."""
    g = torch.Generator().manual_seed(5)
    weights = [random_fp4_weight("nvfp4", 40, 384, "cpu", g) for _ in range(experts or 1)]
    if experts:
        weight = fp4.FP4Weight("nvfp4", torch.stack([w.packed for w in weights]),
                               torch.stack([w.scales for w in weights]), torch.stack([w.global_scale for w in weights]))
    else:
        weight = weights[0]
    tiled = cuda_gemm.tiled_layout(weight)
    tile_bytes = cuda_gemm.tile_bytes("nvfp4")
    assert tiled.shape[-3:] == (3, 3, tile_bytes)
    assert tiled.stride()[-3:] == (tile_bytes, 3 * tile_bytes, 1)
    if experts:
        assert tiled.stride(0) == 9 * tile_bytes
        for e, one in enumerate(weights):
            assert torch.equal(tiled[e], cuda_gemm.tiled_layout(one))


def test_tiled_layout_is_cached_per_weight_until_it_changes() -> None:
    g = torch.Generator().manual_seed(0)
    weight = random_fp4_weight("nvfp4", 32, 256, "cpu", g)
    first = cuda_gemm.cached_tiled_layout(weight)
    assert cuda_gemm.cached_tiled_layout(weight) is first
    other = random_fp4_weight("nvfp4", 32, 256, "cpu", g)
    assert not torch.equal(cuda_gemm.cached_tiled_layout(other), first)
    weight.packed[0, 0] ^= 0xFF  # an in-place write: the cached copy is stale
    fresh = cuda_gemm.cached_tiled_layout(weight)
    assert fresh is not first and torch.equal(fresh, cuda_gemm.tiled_layout(weight))
    weight.scales[1, 0] ^= 1
    assert torch.equal(cuda_gemm.cached_tiled_layout(weight), cuda_gemm.tiled_layout(weight))
    key = id(other.packed)
    del other
    assert key not in cuda_gemm._TILED


@pytest.mark.parametrize("bad", [dict(stages=6), dict(rows_per_warp=3), dict(ctas_per_sm=0), dict(split_k=-1),
                                 dict(k_warps=3), dict(x_ring=True), dict(token_tiles=3),
                                 dict(token_tiles=8, tiled=True), dict(token_tiles=4, tiled=True, x_ring=True, k_warps=2),
                                 dict(stages=8, tiled=True), dict(producer=True, rows_per_warp=1),
                                 dict(producer=True, rows_per_warp=1, tiled=True, x_ring=True),
                                 dict(producer=True, rows_per_warp=2, tiled=True),
                                 dict(producer=True, rows_per_warp=1, tiled=True, k_warps=4),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=8, stages=8),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=3),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=4, k_warps=2),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=0, split_k=2),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=0, stages=6),
                                 dict(token_tiles=0, tiled=True, x_ring=True),
                                 dict(producer=True, rows_per_warp=1, tiled=True, stages=6),
                                 dict(producer=True, rows_per_warp=1, tiled=True, ctas_per_sm=0),
                                 dict(rows_per_warp=1, tiled=True, x_ring=True, x_tensor=True),
                                 dict(producer=True, rows_per_warp=1, tiled=True, token_tiles=4, k_warps=2,
                                      x_tensor=True)])
def test_config_rejects_what_no_kernel_is_built_for(bad: dict) -> None:
    with pytest.raises(ValueError, match="bad CUDA W4A16 config"):
        cuda_gemm.CudaGemmConfig(**bad)


def test_producer_config_covers_a_cta_of_eight_tiles_and_splits_for_occupancy_only() -> None:
    """The producer kernel's CTA is 8 tiles of 16 rows (128 rows) with one or two computing
    warps each; x streams through its ring, so the split of K follows the occupancy aim
    alone (the x-staging budget would ask for 5 at 16 x 14336); routed rows are refused up
    front."""
    producer = cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, producer=True, ctas_per_sm=1)
    assert producer.label == "r1k1c1s0p4tw" and producer.rows_per_cta == 128
    assert dataclasses.replace(producer, stages=8, token_tiles=1).label == "r1k1c1s0p8tm1w"
    # 64 tokens in 8 stages fit shared memory only with x_tensor's narrower x rows
    assert dataclasses.replace(producer, stages=8, token_tiles=8, x_tensor=True).label == "r1k1c1s0p8tm8wv"
    with pytest.raises(ValueError, match="without x_tensor"):
        dataclasses.replace(producer, stages=8, token_tiles=8)
    # N = 4096: 32 CTAs, split 4 = 128 <= 132; N = 14336: 112 CTAs, no split
    assert cuda_gemm.choose_split_k(16, 4096, 14336, producer, 132) == 4
    assert cuda_gemm.choose_split_k(16, 14336, 4096, producer, 132) == 1
    # two computing warps per tile: the same 8 tiles per CTA, so the same grid and split
    paired = dataclasses.replace(producer, k_warps=2)
    assert paired.label == "r1k2c1s0p4tw" and paired.rows_per_cta == 128
    assert cuda_gemm.choose_split_k(16, 4096, 14336, paired, 132) == 4
    staged = dataclasses.replace(producer, producer=False)
    assert cuda_gemm.choose_split_k(16, 14336, 4096, staged, 132) == 5
    # 64 tokens in one token group (token tiles 8): 32 CTAs at N = 4096, split 4; with token
    # groups of 16 the same problem is 4 groups x 32 CTAs, no split
    wide = dataclasses.replace(producer, token_tiles=8)
    assert wide.label == "r1k1c1s0p4tm8w"
    assert cuda_gemm.output_tiles(64, 4096, 128, 8) == 32 and cuda_gemm.choose_split_k(64, 4096, 4096, wide, 132) == 4
    assert cuda_gemm.choose_split_k(64, 4096, 4096, producer, 132) == 1
    weight = random_fp4_weight("nvfp4", 32, 256, "cpu", torch.Generator().manual_seed(0))
    experts = fp4.FP4Weight("nvfp4", weight.packed[None], weight.scales[None], weight.global_scale.reshape(1))
    with pytest.raises(ValueError, match="producer kernel takes no routed rows"):
        cuda_gemm.routed_rows_matmul(torch.zeros(1, 256, dtype=torch.bfloat16), experts,
                                     torch.zeros(1, dtype=torch.int32), config=producer)


@pytest.mark.parametrize("shape, picked", [
    ((64, 4096, 14336), (8, 1, 4, 1)),  # 112 CTAs without a split: 32 chunks each
    ((64, 14336, 4096), (4, 1, 8, 2)),  # 64 tokens: 32 CTAs, split 4, 28 chunks; 32: split 2, 56
    ((64, 4096, 4096), (2, 2, 8, 1)),  # 64 and 32 tokens leave 8 and 16 chunks; 16-token groups: 128 CTAs
    ((32, 4096, 14336), (4, 1, 4, 1)),  # the 64-token kernel at 32 tokens is the 32-token one
    ((17, 4096, 4096), (2, 2, 8, 2)),  # the last choice even when it splits too
    ((64, 256, 14336), (2, 2, 8, 1)),  # two chunks: no choice keeps 32
])
def test_auto_token_tiles_pick_the_widest_kernel_whose_ctas_keep_32_chunks(shape: tuple, picked: tuple) -> None:
    """token_tiles 0 (the M = 17-64 table entry) resolves per problem: the first of
    AUTO_TOKEN_CONFIGS whose CTAs keep AUTO_MIN_CHUNKS chunks after the occupancy split."""
    m, k, n = shape
    auto = cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, producer=True, ctas_per_sm=1, k_warps=2, stages=8,
                                    token_tiles=cuda_gemm.AUTO_TOKEN_TILES, x_tensor=True)
    assert cuda_gemm.pick_config(64, "nvfp4") == cuda_gemm.pick_config(17, "mxfp4") == auto
    assert auto.label == "r1k2c1s0p8tm0wv"
    resolved = cuda_gemm.resolve_token_tiles(auto, m, n, k, 132)
    split = cuda_gemm.choose_split_k(m, n, k, resolved, 132)
    assert (cuda_gemm.token_tiles(m, resolved.token_tiles), resolved.k_warps, resolved.stages, split) == picked
    assert resolved.x_tensor and cuda_gemm.producer_kernel_exists(resolved.token_tiles, resolved.k_warps,
                                                                  resolved.stages, resolved.x_tensor)
    # configs that name their token tiles, and other kernels, pass through unchanged
    fixed = dataclasses.replace(auto, token_tiles=8, k_warps=1, stages=4)
    assert cuda_gemm.resolve_token_tiles(fixed, m, n, k, 132) is fixed


def test_config_labels_parse_back_to_their_configs() -> None:
    """The tuner prints labels and the profiler script takes them (--config): every table
    entry and a fixed split come back as the same config; the short forms without kW and sS
    are k_warps 1 and split_k 0; other text and configs no kernel is built for are one-line
    ValueErrors."""
    configs = [cuda_gemm.pick_config(m, fmt) for m in (1, 16, 64, 300) for fmt in fp4.FORMATS]
    configs += [cuda_gemm.CudaGemmConfig(split_k=3), dataclasses.replace(PRODUCER, token_tiles=8, x_tensor=True)]
    for config in configs:
        assert cuda_gemm.CudaGemmConfig.from_label(config.label) == config, config.label
    assert cuda_gemm.CudaGemmConfig.from_label("r1k4c4p4") == cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4)
    assert cuda_gemm.CudaGemmConfig.from_label("r2c4p4") == cuda_gemm.CudaGemmConfig()
    with pytest.raises(ValueError, match="expected a CUDA W4A16 config label"):
        cuda_gemm.CudaGemmConfig.from_label("r1k2c1s0p8tw ")
    with pytest.raises(ValueError, match="bad CUDA W4A16 config"):
        cuda_gemm.CudaGemmConfig.from_label("r1k1c1p6tw")


def test_launch_table_per_format(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At M = 1 both formats pick warps along K per shape, aiming at one CTA per SM (session
    10's measurements with CTAs of 8 warps); the tables are per format (tables.pick_by_format),
    their rows the same since then; an override list applies to both formats."""
    assert cuda_gemm.pick_config(1, "nvfp4").k_warps == cuda_gemm.AUTO_K_WARPS
    assert cuda_gemm.pick_config(1, "nvfp4").ctas_per_sm == 1
    for m in (1, 2, 16, 64, 300):
        assert cuda_gemm.pick_config(m, "nvfp4") == cuda_gemm.pick_config(m, "mxfp4")
    with pytest.raises(ValueError, match="format"):
        cuda_gemm.pick_config(1, "int4")
    path = tmp_path / "cuda-table.json"
    path.write_text(tables.table_json(((1 << 30, cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=2)),)))
    monkeypatch.setenv(cuda_gemm.TABLE_ENV, str(path))
    assert cuda_gemm.pick_config(1, "nvfp4").k_warps == cuda_gemm.pick_config(1, "mxfp4").k_warps == 2


@pytest.mark.parametrize("plant", cuda_gemm.M_16_DIAGNOSTICS)
@pytest.mark.parametrize("m, config", [
    (16, cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=2, tiled=True)),  # x staged, no ring
    (4, cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=2, tiled=True, x_ring=True)),  # one token tile
    (64, cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=1, tiled=True, x_ring=True, token_tiles=8)),
])
def test_m16_diagnostics_name_the_kernels_they_exist_for(plant: str, m: int, config) -> None:
    """Asked for where no kernel has them, a one-line error (the launcher would only say
    "invalid argument"); where they exist, none."""
    with pytest.raises(ValueError, match=f"{plant!r} diagnostic exists for the x-ring kernels of 9 to 16 tokens"):
        cuda_gemm.check_plant_exists(plant, m, config)
    cuda_gemm.check_plant_exists(plant, 16, cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True))
    cuda_gemm.check_plant_exists(plant, 64, cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU listing")
def test_listed_unavailable_with_the_reason_without_a_gpu() -> None:
    result = CliRunner().invoke(cli, ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"w4a16-nvfp4-cuda"' in result.output and '"w4a16-mxfp4-cuda"' in result.output
    ok, why = cuda_gemm.availability()
    assert not ok and why
    named = CliRunner().invoke(cli, ["run", "--backend", "w4a16-nvfp4-cuda", "--shape", "16x128x128"])
    assert named.exit_code == 2 and "unavailable" in named.output and "Traceback" not in named.output


DEVICE = "cuda"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
gpu = pytest.mark.gpu


@functools.lru_cache(maxsize=8)
def make_problem(fmt: str, m: int, k: int, n: int, dtype: torch.dtype, seed: int = 0):
    """x, the quantized weight and the float64 product on the dequantized weight (quantized
    on the GPU: the CPU bytes match, test_w4a16_gemm.py checks that)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) / k**0.5
    q = fp4.quantize(w.to(DEVICE), fmt)
    x = torch.randn(m, k, generator=g).to(dtype).to(DEVICE)
    exact = x.double() @ fp4.dequantize(q).T
    return x, q, exact


# (M, K, N): token tiles 1/2/4/8 and two token groups, N not a multiple of 16 or of a CTA,
# K with a partial last chunk (2112 = 16.5 x 128), K below one chunk (96: MXFP4 3 blocks)
PRODUCER = cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, producer=True)  # the producer-warp kernel
SHAPES = [(1, 4096, 4096), (5, 2112, 1000), (16, 4096, 1536), (17, 1024, 520), (33, 2112, 1000),
          (64, 4096, 256), (100, 512, 130), (3, 96, 48)]


@gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", [cuda_gemm.CudaGemmConfig(), cuda_gemm.CudaGemmConfig(rows_per_warp=1),
                                    cuda_gemm.CudaGemmConfig(split_k=3),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, split_k=2),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4, split_k=3),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, k_warps=2),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4, tiled=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=8, tiled=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, k_warps=8, split_k=2),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=0, tiled=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, split_k=3, tiled=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4, tiled=True, x_ring=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, k_warps=2, split_k=2, tiled=True,
                                                             x_ring=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, split_k=3, tiled=True, x_ring=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True, token_tiles=8),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=2, split_k=3, tiled=True, x_ring=True,
                                                             token_tiles=8),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, split_k=2, tiled=True, x_ring=True,
                                                             token_tiles=4),
                                    PRODUCER,
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, producer=True, stages=8,
                                                             split_k=3),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, producer=True, token_tiles=1,
                                                             split_k=2),
                                    dataclasses.replace(PRODUCER, k_warps=2),
                                    dataclasses.replace(PRODUCER, k_warps=2, stages=8, token_tiles=1, split_k=3),
                                    dataclasses.replace(PRODUCER, token_tiles=8),
                                    dataclasses.replace(PRODUCER, token_tiles=8, split_k=2),
                                    dataclasses.replace(PRODUCER, token_tiles=4, stages=8, split_k=3),
                                    dataclasses.replace(PRODUCER, token_tiles=cuda_gemm.AUTO_TOKEN_TILES),
                                    dataclasses.replace(PRODUCER, x_tensor=True),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=1, split_k=2),
                                    dataclasses.replace(PRODUCER, x_tensor=True, k_warps=2, stages=8, split_k=3),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=4, split_k=3),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=8),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=8, stages=8, split_k=2)],
                         ids=lambda c: c.label)
def test_gpu_exact_to_one_rounding(fmt: str, dtype: str, shape: tuple, config) -> None:
    m, k, n = shape
    if k % 32 and fmt == "nvfp4":
        pytest.skip("K must be a multiple of 32")
    x, q, exact = make_problem(fmt, m, k, n, DTYPES[dtype], seed=m + n)
    y = cuda_gemm.cuda_w4a16_matmul(x, q, config=config)
    assert y.shape == (m, n) and y.dtype == x.dtype
    assert_one_rounding_of_an_fp32_sum(y, x, q, exact)


def assert_one_rounding_of_an_fp32_sum(y: torch.Tensor, x: torch.Tensor, q, exact: torch.Tensor) -> None:
    """|y - exact| within half an ULP of the output (the one rounding) plus the classic
    bound of an fp32 sum of K products, K * 2^-24 * (|x| @ |W|^T), which covers any
    summation order (MMA, split-K). A wrong weight, scale or order of K costs far more."""
    k = x.shape[1]
    magnitude = x.abs().double() @ fp4.dequantize(q).abs().T
    spacing = torch.finfo(y.dtype).eps * exact.abs().clamp_min(torch.finfo(y.dtype).tiny)
    allowed = spacing + (k + 16) * 2.0**-24 * magnitude
    err = (y.double() - exact).abs()
    worst = int((err / allowed).argmax())
    row, col = divmod(worst, y.shape[1])
    assert bool((err <= allowed).all()), (
        f"worst at [{row}, {col}]: y {float(y[row, col]):.6g}, exact {float(exact[row, col]):.6g},"
        f" allowed {float(allowed[row, col]):.3g}, {int((err > allowed).sum())} of {err.numel()} outside")
    ideal, _ = ideal_output(exact, x.dtype, False)
    rel = float((y.double() - exact).norm() / exact.norm())
    assert rel <= 1.2 * float((ideal.double() - exact).norm() / exact.norm()) + 1e-12


@gpu
@pytest.mark.parametrize("config", [cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=8, tiled=True),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4, tiled=True, x_ring=True),
                                    PRODUCER, dataclasses.replace(PRODUCER, k_warps=2),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=8)],
                         ids=lambda c: c.label)
def test_gpu_no_math_diagnostic_is_not_the_product(config) -> None:
    """The profiler's no-math variant streams the same bytes but must not pass for the GEMM."""
    x, q, exact = make_problem("nvfp4", 5, 2112, 1000, torch.bfloat16)
    wrong = cuda_gemm.cuda_w4a16_matmul(x, q, config=config, plant="no-math")
    assert float((wrong.double() - exact).norm() / exact.norm()) > 0.5


@gpu
@pytest.mark.parametrize("plant", cuda_gemm.M_16_DIAGNOSTICS)
@pytest.mark.parametrize("k_warps", [1, 2])
def test_gpu_m16_diagnostics_are_not_the_product(plant: str, k_warps: int) -> None:
    """Each part-of-the-math diagnostic runs (M = 16, x ring) and must not pass for the GEMM,
    while the same config without it does."""
    config = cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=k_warps, tiled=True, x_ring=True)
    x, q, exact = make_problem("nvfp4", 16, 1024, 512, torch.bfloat16)
    right = cuda_gemm.cuda_w4a16_matmul(x, q, config=config)
    wrong = cuda_gemm.cuda_w4a16_matmul(x, q, config=config, plant=plant)
    assert float((right.double() - exact).norm() / exact.norm()) < 1e-2
    assert not float((wrong.double() - exact).norm() / exact.norm()) < 0.5  # NaN counts as wrong too
    with pytest.raises(ValueError, match="diagnostic exists for the x-ring kernels"):
        cuda_gemm.cuda_w4a16_matmul(x[:8], q, config=config, plant=plant)


@gpu
def test_gpu_split_k_is_deterministic_and_counters_reset() -> None:
    x, q, _ = make_problem("nvfp4", 8, 14336, 512, torch.bfloat16)
    for config in (cuda_gemm.CudaGemmConfig(split_k=8), cuda_gemm.CudaGemmConfig(split_k=8, k_warps=4),
                   cuda_gemm.CudaGemmConfig(split_k=8, k_warps=8), dataclasses.replace(PRODUCER, split_k=8),
                   # an odd split: the last CTA's sum loads splits two at a time (finish_tiles)
                   cuda_gemm.CudaGemmConfig(split_k=5, rows_per_warp=1),
                   dataclasses.replace(PRODUCER, split_k=5, k_warps=2),
                   dataclasses.replace(PRODUCER, split_k=5, x_tensor=True, token_tiles=8)):
        outs = [cuda_gemm.cuda_w4a16_matmul(x, q, config=config) for _ in range(5)]
        assert all(torch.equal(outs[0], o) for o in outs[1:])
        assert int(cuda_gemm._COUNTERS[x.device].abs().sum()) == 0


@gpu
def test_gpu_bad_arguments_are_one_line_errors() -> None:
    x, q, _ = make_problem("mxfp4", 2, 256, 64, torch.bfloat16)
    with pytest.raises(ValueError, match="K mismatch"):
        cuda_gemm.cuda_w4a16_matmul(x[:, :128], q)
    with pytest.raises(ValueError, match="bf16 or fp16"):
        cuda_gemm.cuda_w4a16_matmul(x.float(), q)
    with pytest.raises(ValueError, match="unknown planted bug"):
        cuda_gemm.cuda_w4a16_matmul(x, q, plant="typo")
    assert cuda_gemm.cuda_w4a16_matmul(x[:0], q).shape == (0, 64)


@gpu
@pytest.mark.parametrize("fmt", fp4.FORMATS)
def test_gpu_binding_takes_exactly_the_producer_kernels_python_says_exist(fmt: str) -> None:
    """The op itself (not only CudaGemmConfig) refuses a producer kernel that is not built,
    with a one-line error, and runs every one that is: the header's producer_instantiated
    and cuda_gemm.producer_kernel_exists agree."""
    x, q, exact = make_problem(fmt, 64, 512, 256, torch.bfloat16)
    cuda_gemm.EXTENSION.ensure_loaded()  # (the op is called directly below)
    tiled = cuda_gemm.tiled_layout(q)
    empty = torch.empty(0, dtype=torch.int32, device=x.device)
    for tiles, k_warps, stages, x_tensor in itertools.product(cuda_gemm.TOKEN_TILES, cuda_gemm.PRODUCER_K_WARPS,
                                                              cuda_gemm.PRODUCER_STAGES, (False, True)):
        y = torch.empty((64, 256), dtype=x.dtype, device=x.device)

        def run() -> None:
            torch.ops.swiglu_check_w4a16.gemm_(x, tiled, empty.to(torch.uint8), q.global_scale.reshape(-1).float(), y,
                                               y, y, empty, empty.float(), cuda_gemm.FORMAT_IDS[fmt], 1, stages,
                                               k_warps, 1, 0, 1, 0, tiles, 2 if x_tensor else 1)
        if cuda_gemm.producer_kernel_exists(tiles, k_warps, stages, x_tensor):
            run()
            assert_one_rounding_of_an_fp32_sum(y, x, q, exact)
        else:
            with pytest.raises(RuntimeError, match="the producer kernel needs"):
                run()


@gpu
def test_gpu_tiled_pieces_in_either_order_and_no_overlaps() -> None:
    """The op reads the tiled pieces through their strides: tile-major and chunk-major give
    the same bits; a view whose pieces overlap is a one-line error, not a wrong product."""
    x, q, exact = make_problem("nvfp4", 3, 512, 64, torch.bfloat16)
    cuda_gemm.EXTENSION.ensure_loaded()  # (the op is called directly below)
    chunk_major = cuda_gemm.tiled_layout(q)
    tile_major = chunk_major.contiguous()
    assert chunk_major.stride() != tile_major.stride()
    empty = torch.empty(0, dtype=torch.int32, device=x.device)

    def run(packed: torch.Tensor, producer: int = 0) -> torch.Tensor:
        y = torch.empty((3, 64), dtype=x.dtype, device=x.device)
        torch.ops.swiglu_check_w4a16.gemm_(x, packed, empty.to(torch.uint8), q.global_scale.reshape(-1).float(), y, y,
                                           y, empty, empty.float(), 0, 1, 4, 1, 1, 0, 1, 0, 2, producer)
        return y

    for producer in (0, 1, 2):
        assert torch.equal(run(chunk_major, producer), run(tile_major, producer))
        assert_one_rounding_of_an_fp32_sum(run(chunk_major, producer), x, q, exact)
    overlapping = tile_major[:, :1].expand(-1, tile_major.shape[1], -1)  # every chunk would read chunk 0
    with pytest.raises(RuntimeError, match="densely, tile-major or chunk-major"):
        run(overlapping)


def run_backend(backend, shapes="16x4096x1024"):
    settings = api.build_settings(dtypes="bf16,fp16", shapes=shapes, device=DEVICE)
    return api.run([backend], settings)


@gpu
@pytest.mark.parametrize("plant", ["nibble-swap", "scale-off-by-one"])
def test_gpu_planted_bugs_fail(plant: str) -> None:
    backend = gemm_backend(f"planted-{plant}", fp4.FORMATS, "planted bug", "cuda", plant=plant)
    report = run_backend(backend)
    assert len(report.results) == 4
    for result in report.results:
        assert result.verdict == "FAIL", result.case_id
        assert result.metrics["floor_ratio"] > 10, result.metrics
    assert report.exit_code == 1


@gpu
@pytest.mark.parametrize("plant", ["nibble-swap", "scale-off-by-one"])
@pytest.mark.parametrize("config", [cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True, token_tiles=4),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, tiled=True, x_ring=True, token_tiles=8),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=4),
                                    cuda_gemm.CudaGemmConfig(rows_per_warp=1, k_warps=8, tiled=True),
                                    PRODUCER, dataclasses.replace(PRODUCER, token_tiles=1, stages=8),
                                    dataclasses.replace(PRODUCER, k_warps=2),
                                    dataclasses.replace(PRODUCER, token_tiles=4, stages=8),
                                    dataclasses.replace(PRODUCER, token_tiles=8),
                                    dataclasses.replace(PRODUCER, x_tensor=True, k_warps=2, stages=8),
                                    dataclasses.replace(PRODUCER, x_tensor=True, token_tiles=8, stages=8)],
                         ids=lambda c: c.label)
def test_gpu_planted_bugs_fail_in_kernels_of_their_own(plant: str, config) -> None:
    """The 32- and 64-token kernels and the producer kernel are instantiations of their own,
    and the rows layout reads its scales its own way: their plants must fail too, where the
    right kernel passes."""
    for fmt in fp4.FORMATS:
        x, q, exact = make_problem(fmt, 8 * config.token_tiles, 1024, 256, torch.bfloat16)
        right = cuda_gemm.cuda_w4a16_matmul(x, q, config=config)
        assert_one_rounding_of_an_fp32_sum(right, x, q, exact)
        wrong = cuda_gemm.cuda_w4a16_matmul(x, q, config=config, plant=plant)
        assert float((wrong.double() - exact).norm() / exact.norm()) > 0.05, (fmt, plant)


@gpu
def test_gpu_real_backends_pass_through_the_runner() -> None:
    settings = api.build_settings(dtypes="bf16,fp16", shapes=["16x4096x1024", "3x2112x1000"], device=DEVICE)
    report = api.run([REGISTRY.get("w4a16-nvfp4-cuda"), REGISTRY.get("w4a16-mxfp4-cuda")], settings)
    assert report.passed and len(report.results) == 8
    for result in report.results:
        assert result.metrics["floor_ratio"] < 1.2, result.case_id
