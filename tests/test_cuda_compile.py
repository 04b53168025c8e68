"""CI without a GPU: the CUDA backend's sources compile, and what they compile to.

- every `kernels_*.cu` file compiles with the machine's nvcc for sm_90, with the flags the
  real build uses, instantiating every kernel the spec needs, with no register spills
  and with 16-byte loads and stores in every kernel (checked in the PTX);
- `binding.cpp` compiles against the installed torch headers (syntax and types);

Each is skipped, with the reason, where its compiler is missing. All compilations run
in parallel (about 20 s on two cores).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from swiglu_check.kernels.cuda import build
from swiglu_check.ops import ACTIVATIONS, CLAMP_MODES, LAYOUTS

NVCC = build.find_nvcc()
# one kernel per activation x clamp (none, pre, post) x layout, plus the planted
# fminf-clamp variant (silu, pre) in both layouts
KERNELS_PER_DTYPE = len(ACTIVATIONS) * (len(CLAMP_MODES) + 1) * len(LAYOUTS) + len(LAYOUTS)
_ENTRY = re.compile(r"^\.visible \.entry (\S+)\(", re.M)


def _start_nvcc(source: Path, workdir: Path) -> subprocess.Popen:
    keep = workdir / source.stem
    keep.mkdir()
    command = [
        NVCC, "-c", "-std=c++17", *build.NVCC_FLAGS, *build.TORCH_NVCC_FLAGS, build.arch_flag((9, 0)),
        "-Xptxas", "-v", "-keep", "-keep-dir", str(keep), str(source), "-o", str(keep / "kernels.o"),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cuda_include_dir() -> Path | None:
    """CUDA's include folder beside nvcc (nvcc may be a wrapper script elsewhere)."""
    if NVCC is None:
        return None
    homes = [Path(NVCC).parent.parent, Path(NVCC).resolve().parent.parent, Path("/usr/local/cuda")]
    homes += [Path(os.environ[v]) for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    for home in homes:
        for include in (home / "include", home / "targets" / "x86_64-linux" / "include"):
            if (include / "cuda_runtime_api.h").is_file():
                return include
    return None


def _start_binding_check(workdir: Path) -> subprocess.Popen | None:
    """`c++ -fsyntax-only` of binding.cpp against torch's headers and CUDA's."""
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    cuda_include = _cuda_include_dir()
    if compiler is None or cuda_include is None:
        return None
    torch_include = Path(torch.__file__).resolve().parent / "include"
    includes = [torch_include, torch_include / "torch" / "csrc" / "api" / "include", cuda_include]
    if not (torch_include / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").is_file():
        # A CPU-only torch wheel ships c10/cuda's headers but not this generated one
        # (in a CUDA build it holds one line, below).
        stub = workdir / "stub" / "c10" / "cuda" / "impl"
        stub.mkdir(parents=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes.append(workdir / "stub")
    standard = "-std=c++20" if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 10) else "-std=c++17"
    command = [compiler, "-fsyntax-only", standard, "-Wall", "-Wextra", "-Werror",
               *[f"-isystem{path}" for path in includes], str(build.SOURCE_DIR / "binding.cpp")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Start every compilation at once, then collect them."""
    workdir = tmp_path_factory.mktemp("cuda-compile")
    jobs = {}
    if NVCC is not None:
        jobs.update({name: _start_nvcc(build.SOURCE_DIR / name, workdir) for name in build.KERNEL_SOURCES})
    binding = _start_binding_check(workdir)
    if binding is not None:
        jobs["binding.cpp"] = binding
    results = {}
    for name, process in jobs.items():
        output, _ = process.communicate(timeout=600)
        results[name] = (process.returncode, output, workdir / Path(name).stem)
    return results


needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")


@needs_nvcc
@pytest.mark.parametrize("source", build.KERNEL_SOURCES)
def test_kernels_compile_for_sm90(compiled: dict, source: str) -> None:
    returncode, output, _ = compiled[source]
    assert returncode == 0, f"nvcc failed on {source}:\n{output}"
    entries = re.findall(r"Compiling entry function '(\S+)' for 'sm_90'", output)
    assert len(entries) == KERNELS_PER_DTYPE, output
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", output)
    assert spills and all(int(n) == 0 for n in spills), f"register spills in {source}:\n{output}"


@needs_nvcc
@pytest.mark.parametrize("source", build.KERNEL_SOURCES)
def test_every_kernel_has_16_byte_loads_and_stores(compiled: dict, source: str) -> None:
    returncode, output, keep = compiled[source]
    assert returncode == 0, output
    ptx = next(keep.glob("*.ptx")).read_text()
    bodies = _ENTRY.split(ptx)[1:]  # name, body, name, body, ...
    kernels = dict(zip(bodies[0::2], bodies[1::2]))
    assert len(kernels) == KERNELS_PER_DTYPE
    for name, body in kernels.items():
        assert re.search(r"ld\.global\.nc\.v4\.u32", body), f"{name}: no 16-byte load"
        assert re.search(r"st\.global(\.\w+)?\.v4\.u32", body), f"{name}: no 16-byte store"


def test_binding_compiles_against_torch_headers(compiled: dict) -> None:
    if "binding.cpp" not in compiled:
        pytest.skip("no C++ compiler or no CUDA headers (cuda_runtime_api.h) found")
    returncode, output, _ = compiled["binding.cpp"]
    assert returncode == 0, f"binding.cpp does not compile:\n{output}"


def test_compile_test_sees_every_kernel_source() -> None:
    """The build and this test compile the same list of files, and every one exists."""
    assert set(build.KERNEL_SOURCES) == {p.name for p in build.SOURCE_DIR.glob("kernels_*.cu")}
    for name in build.SOURCES + build.HEADERS:
        assert (build.SOURCE_DIR / name).is_file(), name
