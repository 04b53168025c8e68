"""Build the CUDA C++ extension on first use, into a cache reused across runs.

- Where: `$SWIGLU_CHECK_CACHE` (else `$XDG_CACHE_HOME/swiglu-check`, else
  `~/.cache/swiglu-check`), in `cuda/<name>-<key>/`, where the key hashes the sources,
  the flags, the GPU architecture and the toolchain (torch, its CUDA, nvcc, Python). A
  changed source or a new torch builds a new directory; nothing stale is ever loaded.
- How: `torch.utils.cpp_extension.load` (ninja) with `-O3` and
  `-gencode=arch=compute_XY,code=sm_XY` for the GPU present (sm_90 on Hopper). The
  result is a plain shared library that registers the `torch.ops.swiglu_check.*`
  operators when loaded.
- Concurrency: processes building the same directory take an exclusive `flock` on
  `build.flock` first. The OS drops it when a builder dies, so (unlike cpp_extension's
  own `lock` file, which it still uses) a killed build never leaves the next one waiting
  forever: a `lock` file found while holding the flock is stale and removed.
- Availability: `unavailable_reason()` says why the extension cannot be built here (no
  CUDA torch, no GPU, no nvcc, ...) without building anything, so `swiglu-check list`
  stays fast and never crashes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("binding.cpp", "kernels_fp32.cu", "kernels_fp16.cu", "kernels_bf16.cu")
HEADERS = ("act_and_mul.h", "act_and_mul.cuh")
KERNEL_SOURCES = tuple(name for name in SOURCES if name.endswith(".cu"))
EXTENSION_NAME = "swiglu_check_cuda"
CACHE_ENV = "SWIGLU_CHECK_CACHE"
# Flags of our own; cpp_extension adds its defaults (C++ standard, -fPIC, the
# -D__CUDA_NO_HALF_OPERATORS__ family in TORCH_NVCC_FLAGS below) around them.
CXX_FLAGS = ("-O3",)
NVCC_FLAGS = ("-O3",)
# What torch.utils.cpp_extension passes to nvcc for every .cu file (COMMON_NVCC_FLAGS):
# the CI compile test uses them too, so it compiles what the real build compiles.
TORCH_NVCC_FLAGS = (
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "--expt-relaxed-constexpr",
)
_STALE_LOCK = "lock"  # cpp_extension's FileBaton file in the build directory


class BuildError(RuntimeError):
    """The extension could not be built or loaded; the message says why and where the log is."""


def arch_flag(capability: tuple[int, int]) -> str:
    """`-gencode` for exactly this GPU's architecture (sm_90 for an H100)."""
    major, minor = capability
    return f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}"


def cache_root() -> Path:
    """The cache directory: `$SWIGLU_CHECK_CACHE`, else the XDG cache, else ~/.cache."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "swiglu-check"


def find_nvcc() -> str | None:
    """nvcc from CUDA_HOME/CUDA_PATH, else PATH, else /usr/local/cuda (cpp_extension's order)."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(variable)
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


@functools.lru_cache(maxsize=None)
def nvcc_version(nvcc: str) -> tuple[int, int] | None:
    """(major, minor) from `nvcc --version`, or None when it cannot be read."""
    try:
        text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.lru_cache(maxsize=None)
def toolchain_problem() -> str:
    """Why the extension cannot be built here ('' when it can). Builds nothing."""
    if getattr(torch.version, "hip", None):
        return f"torch {torch.__version__} is a ROCm build; this backend is CUDA C++ only"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch (torch.cuda.is_available() is False)"
    nvcc = find_nvcc()
    if nvcc is None:
        return "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
    version = nvcc_version(nvcc)
    if version is None:
        return f"could not read the version of {nvcc}"
    torch_major = int(torch.version.cuda.split(".")[0])
    if version[0] != torch_major:
        return (f"nvcc {version[0]}.{version[1]} ({nvcc}) does not match torch's CUDA {torch.version.cuda};"
                " torch.utils.cpp_extension refuses a major-version mismatch")
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "ninja not found (pip install ninja)"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found ({compiler!r}; set CXX)"
    return ""


@dataclass
class Extension:
    """One CUDA C++ extension built on first use: its sources, and its build state in this
    process (a build is attempted once; a failure is remembered so later calls fail fast)."""

    name: str
    source_dir: Path
    sources: tuple[str, ...]
    headers: tuple[str, ...]
    after_load: Callable[[], None] | None = None  # e.g. fake (shape-only) op registrations
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loaded: Path | None = field(default=None, repr=False)
    _failure: str | None = field(default=None, repr=False)

    @property
    def kernel_sources(self) -> tuple[str, ...]:
        return tuple(name for name in self.sources if name.endswith(".cu"))

    def build_key(self, capability: tuple[int, int]) -> str:
        """A hash of everything that changes the built library."""
        digest = hashlib.sha256()
        for name in sorted(self.sources + self.headers):
            digest.update(name.encode())
            digest.update((self.source_dir / name).read_bytes())
        nvcc = find_nvcc()
        parts = [
            torch.__version__, str(torch.version.cuda), str(nvcc_version(nvcc) if nvcc else None),
            f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine(),
            arch_flag(capability), *CXX_FLAGS, *NVCC_FLAGS,
        ]
        digest.update("\0".join(parts).encode())
        return digest.hexdigest()[:16]

    def build_directory(self, capability: tuple[int, int]) -> Path:
        major, minor = capability
        return cache_root() / "cuda" / f"{self.name}-sm{major}{minor}-{self.build_key(capability)}"

    def library_path(self, directory: Path) -> Path:
        return directory / f"{self.name}.so"

    def failure(self) -> str | None:
        """The reason the last build in this process failed, if it did."""
        return self._failure

    def ensure_loaded(self) -> Path:
        """Build (first use) or reuse the extension and load it into this process, once.
        Returns the library's path; raises BuildError with a one-line reason."""
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            if self._failure is not None:
                raise BuildError(self._failure)
            problem = toolchain_problem()
            if problem:
                raise BuildError(f"cannot build the CUDA extension {self.name}: {problem}")
            try:
                self._loaded = self._build_and_load()
            except BuildError as exc:
                self._failure = str(exc)
                raise
            return self._loaded

    def _build_and_load(self) -> Path:
        from torch.utils import cpp_extension

        capability = torch.cuda.get_device_capability()
        directory = self.build_directory(capability)
        directory.mkdir(parents=True, exist_ok=True)
        library = self.library_path(directory)
        with exclusive_build(directory):
            fresh = not library.exists()
            if fresh:
                _say(f"building the CUDA extension {self.name} for sm_{capability[0]}{capability[1]} in {directory}"
                     " (first use only; about a minute)")
            start = time.perf_counter()
            try:
                cpp_extension.load(
                    name=self.name,
                    sources=[str(self.source_dir / name) for name in self.sources],
                    extra_cflags=list(CXX_FLAGS),
                    extra_cuda_cflags=[*NVCC_FLAGS, arch_flag(capability)],
                    build_directory=str(directory),
                    is_python_module=False,
                    verbose=False,
                )
            except Exception as exc:
                log = directory / "build-error.log"
                log.write_text(f"{type(exc).__name__}: {exc}\n")
                first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise BuildError(f"building the CUDA extension {self.name} failed ({first.strip()[:200]});"
                                 f" full log: {log}") from exc
            if fresh:
                _say(f"built the CUDA extension {self.name} in {time.perf_counter() - start:.1f} s")
        if self.after_load is not None:
            self.after_load()
        return library


@contextlib.contextmanager
def exclusive_build(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock on the build directory; say so when another process has it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: rely on cpp_extension's own lock file alone
        yield
        return
    with open(directory / "build.flock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process building the CUDA extension in {directory}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            stale = directory / _STALE_LOCK
            if stale.exists():  # only flock holders build, so nobody owns it any more
                stale.unlink()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(f"swiglu-check: {message}", file=sys.stderr, flush=True)


def _register_fake() -> None:
    """Shape-only version of the functional op, so torch.compile can trace through it."""
    register_fake = getattr(torch.library, "register_fake", None)
    if register_fake is None:
        return

    def fake(x, activation="silu", alpha=1.0, beta=0.0, limit=None, layout="halves", clamp="pre"):
        return x.new_empty((*x.shape[:-1], x.shape[-1] // 2))

    with contextlib.suppress(Exception):  # already registered, or an older torch
        register_fake("swiglu_check::act_and_mul")(fake)


ACT_AND_MUL = Extension(EXTENSION_NAME, SOURCE_DIR, SOURCES, HEADERS, after_load=_register_fake)


def build_key(capability: tuple[int, int]) -> str:
    return ACT_AND_MUL.build_key(capability)


def build_directory(capability: tuple[int, int]) -> Path:
    return ACT_AND_MUL.build_directory(capability)


def library_path(directory: Path) -> Path:
    return ACT_AND_MUL.library_path(directory)


def failure() -> str | None:
    """The reason the gated-activation extension's last build in this process failed, if it did."""
    return ACT_AND_MUL.failure()


def ensure_loaded() -> Path:
    """Build (first use) or reuse the gated-activation extension and load it, once."""
    return ACT_AND_MUL.ensure_loaded()
