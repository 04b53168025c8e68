"""CI without a GPU: the CUDA backend's sources compile, and what they compile to.

- every `kernels_*.cu` file compiles with the machine's nvcc for sm_90, with the flags the
  real build uses, instantiating every kernel the spec needs, with no register spills
  and with 16-byte loads and stores in every kernel (checked in the PTX);
- `binding.cpp` compiles against the installed torch headers (syntax and types);
- the launch geometry (`plan_grid`, host C++) covers every item within CUDA's limits and
  picks the geometry measured fastest on the H100;

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
# fminf-clamp variant (silu, pre) in both layouts, plus the fast-math silu kernels that
# the tuning script times (clamp x layout)
KERNELS_PER_DTYPE = (len(ACTIVATIONS) + 1) * (len(CLAMP_MODES) + 1) * len(LAYOUTS) + len(LAYOUTS)
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


def _start_binding_check(workdir: Path, source: Path = build.SOURCE_DIR / "binding.cpp") -> subprocess.Popen | None:
    """`c++ -fsyntax-only` of a binding (`source`) against torch's headers and CUDA's."""
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
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes.append(workdir / "stub")
    standard = "-std=c++20" if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 10) else "-std=c++17"
    command = [compiler, "-fsyntax-only", standard, "-Wall", "-Wextra", "-Werror",
               *[f"-isystem{path}" for path in includes], str(source)]
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


_PLAN_MAIN = r"""
#include <cstdio>
#include "act_and_mul.h"
int main() {
  long long rows, items, per_block, max_blocks, max_threads;
  int sms, threads_per_sm;
  while (std::scanf("%lld %lld %lld %lld %d %d %lld", &rows, &items, &per_block, &max_blocks, &sms, &threads_per_sm,
                    &max_threads) == 7) {
    const auto plan = swiglu_check::plan_grid(rows, items, per_block, max_blocks, sms, threads_per_sm, max_threads);
    std::printf("%lld %lld %lld %d\n", (long long)plan.row_blocks, (long long)plan.chunks, (long long)plan.chunk,
                plan.threads);
  }
  return 0;
}
"""


def _plans(tmp_path: Path, cases: list[tuple[int, ...]]) -> list[tuple[int, int, int, int]]:
    """plan_grid for each (rows, items, items_per_block, max_blocks, sms, threads_per_sm[, max_threads])."""
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    cuda_include = _cuda_include_dir()
    if compiler is None or cuda_include is None:
        pytest.skip("no C++ compiler or no CUDA headers (cuda_runtime_api.h) found")
    (tmp_path / "plan.cpp").write_text(_PLAN_MAIN)
    binary = tmp_path / "plan"
    subprocess.run([compiler, "-std=c++17", "-O1", f"-I{build.SOURCE_DIR}", f"-I{cuda_include}",
                    str(tmp_path / "plan.cpp"), "-o", str(binary)], check=True, capture_output=True)
    stdin = "".join(" ".join(map(str, (*case, 0)[:7])) + "\n" for case in cases)
    out = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True).stdout
    return [tuple(int(v) for v in line.split()) for line in out.splitlines()]


H100 = (132, 2048)  # multiprocessors, threads per multiprocessor


def test_grid_plan_picks_the_measured_geometry_on_an_h100(tmp_path) -> None:
    """bf16 vectors per row: D = 2048 -> 256, 7168 -> 896, 18432 -> 2304."""
    cases = [(1024, 2304, 0, 0, *H100), (16384, 2304, 0, 0, *H100), (1024, 896, 0, 0, *H100),
             (16384, 896, 0, 0, *H100), (1024, 256, 0, 0, *H100), (1, 896, 0, 0, *H100)]
    plans = _plans(tmp_path, cases)
    # 1024 rows: 256-item blocks (9 and 4 per row); 16384 rows: a block per row
    assert plans[0] == (1024, 9, 256, 256)
    assert plans[1] == (16384, 1, 2304, 480)
    assert plans[2] == (1024, 4, 224, 224)
    assert plans[3] == (16384, 1, 896, 448)
    assert plans[4] == (1024, 1, 256, 256)
    assert plans[5] == (1, 4, 224, 224)


def test_grid_plans_cover_every_item_within_the_launch_limits(tmp_path) -> None:
    cases = [(rows, items, per_block, max_blocks, sms, tps)
             for rows in (1, 7, 1024, 5000, 1 << 20)
             for items in (1, 8, 13831, 2304, 100_000_000)
             for per_block in (0, 1, 100, 1 << 30)
             for max_blocks in (0, 3)
             for sms, tps in ((132, 2048), (8, 1536))]
    for (rows, items, per_block, max_blocks, _sms, _tps), plan in zip(cases, _plans(tmp_path, cases)):
        row_blocks, chunks, chunk, threads = plan
        assert chunks * chunk >= items > (chunks - 1) * chunk, (rows, items, per_block, plan)
        assert 1 <= chunks <= 65535 and 32 <= threads <= 512 and threads % 32 == 0
        assert 1 <= row_blocks <= (min(rows, max_blocks) if max_blocks else rows)
        if per_block > 0 and items / per_block <= 65535:
            assert chunk <= per_block


def test_max_threads_caps_the_block_and_keeps_the_chunks(tmp_path) -> None:
    """max_threads (the tuning script's items per thread) shrinks blocks, never the work."""
    cases = [(1024, 2304, 0, 0, *H100, 128), (1024, 2304, 512, 0, *H100, 128), (1024, 256, 1 << 30, 0, *H100, 64),
             (1024, 2304, 0, 0, *H100, 100), (1024, 2304, 0, 0, *H100, 4096)]
    plans = _plans(tmp_path, cases)
    assert plans[0] == (1024, 9, 256, 128)  # the default chunks, two items per thread
    assert plans[1] == (1024, 5, 461, 128)
    assert plans[2] == (1024, 1, 256, 64)
    assert plans[3] == (1024, 9, 256, 128)  # rounded up to whole warps
    assert plans[4] == (1024, 9, 256, 256)  # a cap above the need changes nothing
