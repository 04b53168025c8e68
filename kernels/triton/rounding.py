"""Exact round-to-nearest-even onto a narrow float grid, in fp32 and integer arithmetic.

Used only where Triton's CPU interpreter converts inexactly (measured by `probe.py`;
DESIGN.md section 5): the kernels then round their fp32 result onto the target grid
themselves, so the interpreter's conversion receives a value it can represent and has
nothing left to round. On a GPU the hardware conversion is used instead; GPU tests check
that both paths give bit-identical outputs, so the interpreted rows judge the same
numbers a GPU produces.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_to_bf16_grid(v):
    """fp32 `v` rounded to the nearest bf16 value (ties to even), still as fp32.

    Adds half a bf16 unit (minus one, plus the kept lowest bit: ties go to even) to the
    bit pattern and clears the 16 dropped bits; a carry correctly bumps the exponent, and
    overflow past the largest finite bf16 gives Inf, as a hardware conversion does.
    """
    bits = v.to(tl.int32, bitcast=True)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) & -65536).to(tl.float32, bitcast=True)  # -65536 = 0xFFFF0000
    return tl.where(v != v, v, rounded)  # NaN payloads must not round to Inf


@triton.jit
def round_to_e4m3_grid(v):
    """fp32 values with |v| <= 448 rounded to the nearest float8_e4m3fn value (ties to
    even), returned as fp32. NaN stays NaN, the sign of zero is kept."""
    bits = v.to(tl.int32, bitcast=True)
    sign = bits & -2147483648  # 0x80000000
    a = tl.abs(v)
    abits = a.to(tl.int32, bitcast=True)
    # normals (|v| >= 2**-6): keep 3 of fp32's 23 mantissa bits, ties to even; a carry
    # out of the mantissa correctly bumps the exponent
    lsb = (abits >> 20) & 1
    normal = ((abits + 0x7FFFF + lsb) & -1048576).to(tl.float32, bitcast=True)  # -1048576 = 0xFFF00000
    # subnormals: multiples of 2**-9; t < 8, and t + 2**23 rounds t to an integer (ties to even)
    t = a * 512.0
    sub = ((t + 8388608.0) - 8388608.0) * 0.001953125
    r = tl.where(a >= 0.015625, normal, sub)
    return (r.to(tl.int32, bitcast=True) | sign).to(tl.float32, bitcast=True)
