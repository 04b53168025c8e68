"""Dtype names, and the ordered-integer view used to count ULPs."""

from __future__ import annotations

import torch

from .errors import InputError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
ALIASES = {
    "float32": "fp32", "float": "fp32", "f32": "fp32",
    "float16": "fp16", "half": "fp16", "f16": "fp16",
    "bfloat16": "bf16",
}
_INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def canonical(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DTYPES:
        raise InputError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return key


def to_torch(name: str) -> torch.dtype:
    return DTYPES[canonical(name)]


def name_of(dtype: torch.dtype) -> str:
    for key, value in DTYPES.items():
        if value == dtype:
            return key
    return str(dtype).removeprefix("torch.")


def parse_dtypes(values: tuple[str, ...] | list[str]) -> list[str]:
    """Repeatable, comma-separated dtype names, canonicalised, order kept, no repeats."""
    names: list[str] = []
    for value in values:
        for part in str(value).split(","):
            key = canonical(part)
            if key not in names:
                names.append(key)
    return names


def ordered_bits(values: torch.Tensor) -> torch.Tensor:
    """Map floats to int64 so that adjacent representable values differ by exactly 1.

    Sign-magnitude bit patterns become two's-complement order; +0 and -0 both map to 0.
    """
    bits = values.contiguous().view(_INT_VIEW[values.dtype]).to(torch.int64)
    width = values.element_size() * 8
    magnitude = bits & ((1 << (width - 1)) - 1)
    return torch.where(bits < 0, -magnitude, magnitude)


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Number of representable values between `a` and `b` (same float dtype)."""
    return (ordered_bits(a) - ordered_bits(b)).abs()
