"""The GPU diagnostic scripts refuse cleanly on a machine without a CUDA device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
@pytest.mark.parametrize("script, args", [("read_floor_bench.py", []), ("tune_w4a16_cuda.py", []),
                                          ("tune_moe_w4a16.py", []), ("weight_stream_bench.py", [])])
def test_exits_2_with_one_line_without_a_gpu(script: str, args: list[str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA" in lines[0] and "Traceback" not in done.stderr
