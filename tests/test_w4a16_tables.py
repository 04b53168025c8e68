"""Tuned config tables (kernels/w4a16/tables.py): JSON round trip, bucket pick, the
environment override read once per path; per-format tables and their two JSON forms."""

from __future__ import annotations

import json
import re

import pytest

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


FORMATS = ("nvfp4", "mxfp4")
MOE_TABLE_DEQ4 = ((16, MoeConfig(block_n1=64, block_n2=128, block_m=16, block_k=128, deq=4)), MOE_TABLE[1])


def test_per_format_tables_are_a_list_when_they_agree_and_an_object_when_not(tmp_path) -> None:
    path = tmp_path / "tables.json"
    same = tables.tables_json(dict.fromkeys(FORMATS, MOE_TABLE), TABLE_KEY)
    assert same == tables.table_json(MOE_TABLE, TABLE_KEY)  # the list form, as before
    path.write_text(same)
    assert tables.load_tables(str(path), MoeConfig, FORMATS, TABLE_KEY) == dict.fromkeys(FORMATS, MOE_TABLE)

    by_format = {"nvfp4": MOE_TABLE_DEQ4, "mxfp4": MOE_TABLE}
    text = tables.tables_json(by_format, TABLE_KEY)
    assert text.startswith("{") and set(json.loads(text)) == set(FORMATS)
    path.write_text(text)
    assert tables.load_tables(str(path), MoeConfig, FORMATS, TABLE_KEY) == by_format


def test_the_list_loader_refuses_the_per_format_object(tmp_path) -> None:
    path = tmp_path / "tables.json"
    path.write_text(tables.tables_json({"nvfp4": MOE_TABLE_DEQ4, "mxfp4": MOE_TABLE}, TABLE_KEY))
    with pytest.raises(ValueError, match=re.escape(f"{path}: expected a non-empty list")):
        tables.load_table(str(path), MoeConfig, TABLE_KEY)


ROW = '{"t_max": 1, "config": {"block_m": 16}}'


@pytest.mark.parametrize("text, problem", [
    ("not json", "not valid JSON"),
    ("3", "expected a list of rows or an object of them by format (nvfp4, mxfp4), got int"),
    ("[]", "expected a non-empty list"),
    (f'{{"nvfp4": [{ROW}], "mxfp4": [{ROW}], "fp8": [{ROW}]}}', "unknown format 'fp8' (expected nvfp4, mxfp4)"),
    (f'{{"nvfp4": [{ROW}]}}', "no table for 'mxfp4'"),
    (f'{{"nvfp4": [{ROW}], "mxfp4": {ROW}}}', "[mxfp4]: expected a non-empty list"),
    ('[{"t_max": 1}]', "row 0 is not"),
    ('[{"t_max": 1, "config": {"blockm": 16}}]', "row 0: " + "MoeConfig.__init__() got an unexpected keyword"),
    ('[{"t_max": "many", "config": {}}]', "row 0: invalid literal for int()"),
])
def test_a_malformed_file_fails_with_one_line_naming_it(tmp_path, text: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        tables.load_tables(str(path), MoeConfig, FORMATS, TABLE_KEY)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_environment_tables_by_format_replace_the_defaults_and_are_read_once(tmp_path, monkeypatch) -> None:
    env = "SWIGLU_CHECK_TEST_TABLES"
    defaults = dict.fromkeys(FORMATS, MOE_TABLE)
    monkeypatch.delenv(env, raising=False)
    assert tables.active_tables(env, defaults, MoeConfig, TABLE_KEY) is defaults
    path = tmp_path / "tables.json"
    path.write_text(tables.tables_json({"nvfp4": MOE_TABLE_DEQ4, "mxfp4": MOE_TABLE}, TABLE_KEY))
    monkeypatch.setenv(env, str(path))
    loaded = tables.active_tables(env, defaults, MoeConfig, TABLE_KEY)
    assert loaded == {"nvfp4": MOE_TABLE_DEQ4, "mxfp4": MOE_TABLE}
    path.write_text("not json")  # a per-call read would now fail
    assert tables.active_tables(env, defaults, MoeConfig, TABLE_KEY) is loaded
