"""The CUDA backend's registration, availability and build cache, without a GPU."""

from __future__ import annotations

import io
import re
import json
import threading
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from swiglu_check.backends import REGISTRY
from swiglu_check.cli import cli
from swiglu_check.kernels import cuda as cuda_kernels
from swiglu_check.kernels.cuda import build
from swiglu_check.ops import preset

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")


def test_cuda_backend_is_registered_as_gated_on_cuda() -> None:
    backend = REGISTRY.get("cuda")
    assert backend.kind == "gated"
    assert backend.devices == ("cuda",)
    assert set(backend.dtypes) == {"fp32", "fp16", "bf16"}
    assert "swiglu_check.backends.cuda_backend" not in REGISTRY.load_errors


@no_cuda
def test_list_shows_cuda_unavailable_with_its_reason() -> None:
    result = CliRunner().invoke(cli, ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)["backends"]}
    assert rows["cuda"]["available"] is False
    assert rows["cuda"]["reason"] == build.toolchain_problem() != ""


@no_cuda
def test_run_with_cuda_backend_is_a_one_line_usage_error() -> None:
    result = CliRunner().invoke(cli, ["run", "--backend", "cuda"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "backend 'cuda' is unavailable" in lines[0]


@no_cuda
def test_calling_without_a_gpu_raises_a_build_error_and_builds_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    with pytest.raises(build.BuildError, match="cannot build the CUDA extension"):
        cuda_kernels.act_and_mul(torch.zeros(2, 8), preset("llama"))
    assert list(tmp_path.iterdir()) == []


def _problem_with(monkeypatch, *, cuda: str | None = "13.0", gpu: bool = True, nvcc: str | None = "/x/nvcc",
                  nvcc_version: tuple[int, int] | None = (13, 0), ninja: bool = True) -> str:
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(build, "find_nvcc", lambda: nvcc)
    monkeypatch.setattr(build, "nvcc_version", lambda _path: nvcc_version)
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: ninja)
    return build.toolchain_problem.__wrapped__()


def test_toolchain_reasons_name_the_missing_piece(monkeypatch) -> None:
    assert "CPU-only build" in _problem_with(monkeypatch, cuda=None)
    assert "no CUDA GPU" in _problem_with(monkeypatch, gpu=False)
    assert "nvcc not found" in _problem_with(monkeypatch, nvcc=None)
    assert "does not match torch's CUDA 13.0" in _problem_with(monkeypatch, nvcc_version=(12, 8))
    assert "ninja not found" in _problem_with(monkeypatch, ninja=False)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert "no C++ compiler" in _problem_with(monkeypatch)
    monkeypatch.setenv("CXX", "sh")  # any program on PATH stands in for the compiler
    assert _problem_with(monkeypatch) == ""


def test_nvcc_version_reads_the_release(tmp_path) -> None:
    fake = tmp_path / "nvcc"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    fake.chmod(0o755)
    assert build.nvcc_version.__wrapped__(str(fake)) == (13, 0)
    assert build.nvcc_version.__wrapped__(str(tmp_path / "missing")) is None


def test_cache_directory_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "mine"))
    assert build.cache_root() == tmp_path / "mine"
    directory = build.build_directory((9, 0))
    assert directory.parent == tmp_path / "mine" / "cuda"
    assert directory.name.startswith("swiglu_check_cuda-sm90-")
    monkeypatch.delenv(build.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build.cache_root() == tmp_path / "xdg" / "swiglu-check"


def test_build_key_changes_with_the_architecture_and_the_sources(tmp_path, monkeypatch) -> None:
    assert build.build_key((9, 0)) == build.build_key((9, 0))
    assert build.build_key((9, 0)) != build.build_key((8, 0))
    copy = tmp_path / "src"
    copy.mkdir()
    for name in build.SOURCES + build.HEADERS:
        (copy / name).write_bytes((build.SOURCE_DIR / name).read_bytes())
    before = build.build_key((9, 0))
    monkeypatch.setattr(build.ACT_AND_MUL, "source_dir", copy)
    assert build.build_key((9, 0)) == before
    (copy / "act_and_mul.cuh").write_text((copy / "act_and_mul.cuh").read_text() + "\n// edited\n")
    assert build.build_key((9, 0)) != before


def test_exclusive_build_serialises_builders_and_clears_a_stale_lock(tmp_path) -> None:
    (tmp_path / "lock").write_text("")  # left by a build that was killed
    entered = threading.Event()
    order: list[str] = []

    def first() -> None:
        with build.exclusive_build(tmp_path):
            order.append("first in")
            entered.set()
            time.sleep(0.4)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    stderr = io.StringIO()
    start = time.perf_counter()
    with redirect_stderr(stderr), build.exclusive_build(tmp_path):
        order.append("second in")
    waited = time.perf_counter() - start
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert waited > 0.2
    assert "waiting for another process" in stderr.getvalue()
    assert not (tmp_path / "lock").exists()


def test_a_failed_build_is_remembered_and_reported_by_availability(monkeypatch) -> None:
    monkeypatch.setattr(build, "toolchain_problem", lambda: "")
    monkeypatch.setattr(cuda_kernels, "toolchain_problem", lambda: "")
    monkeypatch.setattr(build.ACT_AND_MUL, "_failure", None)
    monkeypatch.setattr(build.ACT_AND_MUL, "_loaded", None)
    calls = []

    def broken() -> Path:
        calls.append(1)
        raise build.BuildError("building the CUDA extension failed (nvcc error); full log: /x/build-error.log")

    monkeypatch.setattr(build.ACT_AND_MUL, "_build_and_load", broken)
    for _ in range(2):
        with pytest.raises(build.BuildError, match="nvcc error"):
            build.ensure_loaded()
    assert calls == [1]
    ok, why = cuda_kernels.availability()
    assert not ok and "full log" in why


def _top_level_args(text: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose '(' is at `start`."""
    args, depth, current, i, quote = [], 0, "", start + 1, None
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == "\\":
                current += text[i + 1]
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch in "([{":
            depth += 1
            current += ch
        elif ch in ")]}":
            if depth == 0:
                args.append(current.strip())
                return args, i
            depth -= 1
            current += ch
        elif ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    raise AssertionError("unbalanced parentheses")


def test_binding_error_messages_never_go_through_iostreams() -> None:
    """On the H100 machine, a number formatted by std::ostream inside the extension
    crashed the process (SIGSEGV); every TORCH_CHECK message must be one string literal
    or one `message(...)` (built with std::to_string and snprintf)."""
    source = (build.SOURCE_DIR / "binding.cpp").read_text()
    checks = [m.start() for m in re.finditer(r"\bTORCH_CHECK\(", source)]
    assert len(checks) >= 15
    for start in checks:
        args, _ = _top_level_args(source, source.index("(", start))
        line = source.count("\n", 0, start) + 1
        assert len(args) == 2, f"binding.cpp:{line}: TORCH_CHECK with {len(args) - 1} message parts"
        text = args[1]
        assert text.startswith("message(") or re.fullmatch(r'("([^"\\]|\\.)*"\s*)+', text), f"binding.cpp:{line}"
