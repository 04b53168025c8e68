"""Built-in backend `cuda`: the CUDA C++ extension of kind `gated`, built on first call.

Importing this module builds nothing and needs no GPU: `available()` checks the
toolchain (a CUDA torch, a visible GPU, nvcc matching torch's CUDA, ninja, a C++
compiler) and reports a failed build; the first call compiles the extension into the
cache (`SWIGLU_CHECK_CACHE`), printing a message on stderr while it does.
"""

from __future__ import annotations

from swiglu_check.kernels import cuda as cuda_kernels

from . import Backend, register

register(
    Backend(
        name="cuda",
        kind="gated",
        call=cuda_kernels.act_and_mul,
        description="CUDA C++ extension (torch.ops.swiglu_check.act_and_mul): clamp as a template"
                    " parameter, 16-byte vector path, fp32 math; built on first use",
        devices=("cuda",),
        check_available=cuda_kernels.availability,
    )
)
