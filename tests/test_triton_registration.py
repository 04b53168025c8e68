"""Registration of the Triton backends: lazy imports, availability, interpreter choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from swiglu_check.backends import REGISTRY
from swiglu_check.backends import triton_backends


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swiglu_check", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_backends_are_registered_with_their_kinds() -> None:
    assert REGISTRY.get("triton").kind == "gated"
    assert REGISTRY.get("triton-fp8").kind == "gated-fp8"
    if not torch.cuda.is_available():
        assert REGISTRY.get("triton").interpreted("cpu")
        assert REGISTRY.get("triton").devices == ("cpu",)


def test_missing_triton_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_backends.importlib.util, "find_spec", lambda name: None)
    ok, why = REGISTRY.get("triton").available()
    assert not ok and "not installed" in why


def test_list_shows_triton_backends_as_json() -> None:
    done = _run_cli("list", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["backends"]}
    assert {"triton", "triton-fp8"} <= set(rows)
    assert rows["triton-fp8"]["kind"] == "gated-fp8"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU interpreter path")
def test_kernels_work_when_triton_was_imported_first() -> None:
    """torch.compile (or a user) may import triton before TRITON_INTERPRET is set; the
    kernels must still run through the interpreter then."""
    code = (
        "import triton, torch\n"
        "from swiglu_check import api\n"
        "r = api.check(['triton', 'triton-fp8'], shapes=['16x128'], dtypes=['bf16'], scale_layouts=['row'])\n"
        "print([x.verdict for x in r.results])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['PASS', 'PASS']"


def test_bench_without_a_gpu_exits_2() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = _run_cli("bench", "--backend", "triton")
    assert done.returncode == 2 and "CUDA" in done.stderr
