"""Tuned config tables (kernels/w4a16/tables.py): JSON round trip, bucket pick, the
environment override read once per path."""

from __future__ import annotations

from swiglu_check.kernels.w4a16 import tables
from swiglu_check.kernels.w4a16.cuda_gemm import CudaGemmConfig
from swiglu_check.kernels.w4a16.moe import TABLE_KEY, MoeConfig

CUDA_TABLE = ((1, CudaGemmConfig(rows_per_warp=1, k_warps=4)), (1 << 30, CudaGemmConfig(tiled=True, x_ring=True)))
MOE_TABLE = ((16, MoeConfig(block_n1=64, block_n2=128, block_m=16, block_k=128)),
             (1 << 30, MoeConfig(block_n1=64, block_n2=64, block_m=32, block_k=128)))


def test_round_trip_with_either_bucket_key(tmp_path) -> None:
    for table, config_type, key in ((CUDA_TABLE, CudaGemmConfig, "m_max"), (MOE_TABLE, MoeConfig, TABLE_KEY)):
        path = tmp_path / f"{key}.json"
        path.write_text(tables.table_json(table, key))
        assert f'"{key}"' in path.read_text()
        assert tables.load_table(str(path), config_type, key) == table


def test_pick_takes_the_first_bucket_that_holds_the_size() -> None:
    assert tables.pick(CUDA_TABLE, 1) is CUDA_TABLE[0][1]
    assert tables.pick(CUDA_TABLE, 2) is CUDA_TABLE[1][1]
    assert tables.pick(((4, "small"), (8, "large")), 100) == "large"  # past the last bucket: the last


def test_environment_table_replaces_the_default_and_is_read_once(tmp_path, monkeypatch) -> None:
    env = "SWIGLU_CHECK_TEST_TABLE"
    monkeypatch.delenv(env, raising=False)
    assert tables.active_table(env, CUDA_TABLE, CudaGemmConfig) is CUDA_TABLE
    path = tmp_path / "table.json"
    path.write_text(tables.table_json(CUDA_TABLE[1:]))
    monkeypatch.setenv(env, str(path))
    loaded = tables.active_table(env, CUDA_TABLE, CudaGemmConfig)
    assert loaded == CUDA_TABLE[1:]
    path.write_text("not json")  # a per-call read would now fail
    assert tables.active_table(env, CUDA_TABLE, CudaGemmConfig) is loaded
