"""The FP8 quantization spec: how a fused activation + quantization kernel must quantize
its output (DESIGN.md section 3, "FP8 per-token-group quantization").

Per token, per group of `group_size` consecutive output elements:

    scale = max(absmax(group), eps) / 448            (float8_e4m3fn's largest value)
    scale = 2 ** ceil(log2(scale))                   (only with `ue8m0`)
    q     = clamp(y / scale, -448, 448) cast to float8_e4m3fn (round to nearest even)

Scales are fp32, `[T, D/G]` row-major, or with `column_major` the transpose view of a
contiguous `[D/G, T]` tensor (the DeepGEMM layout: logical shape `[T, D/G]`, strides
`(1, T)`). D must be a multiple of the group size.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

E4M3_MAX = 448.0
DEFAULT_GROUP_SIZE = 128
DEFAULT_EPS = 1e-10  # the absmax floor of vLLM's and SGLang's per-token-group quantizers
SCALE_LAYOUTS = ("row", "col")


@dataclass(frozen=True)
class Fp8Spec:
    """One FP8 quantization contract."""

    group_size: int = DEFAULT_GROUP_SIZE
    ue8m0: bool = False
    column_major: bool = False
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise InputError(f"group size must be a positive integer, got {self.group_size!r}")
        if not (self.eps > 0.0):
            raise InputError(f"eps must be positive, got {self.eps}")

    @property
    def scale_layout(self) -> str:
        return "col" if self.column_major else "row"

    @property
    def label(self) -> str:
        """Compact, parseable name, e.g. `g128`, `g128+ue8m0+col` (eps only when not default)."""
        parts = [f"g{self.group_size}"]
        if self.ue8m0:
            parts.append("ue8m0")
        if self.column_major:
            parts.append("col")
        if self.eps != DEFAULT_EPS:
            parts.append(f"eps{self.eps:g}")
        return "+".join(parts)

    @classmethod
    def from_label(cls, label: str) -> "Fp8Spec":
        head, *rest = label.split("+")
        if not head.startswith("g") or not head[1:].isdigit():
            raise InputError(f"malformed FP8 spec {label!r}: expected g<group size>[+ue8m0][+col]")
        fields: dict = {"group_size": int(head[1:])}
        for part in rest:
            if part == "ue8m0":
                fields["ue8m0"] = True
            elif part == "col":
                fields["column_major"] = True
            elif part.startswith("eps"):
                try:
                    fields["eps"] = float(part[3:])
                except ValueError:
                    raise InputError(f"malformed FP8 spec {label!r} (bad part {part!r})") from None
            else:
                raise InputError(f"malformed FP8 spec {label!r} (bad part {part!r})")
        return cls(**fields)

    def describe(self) -> str:
        scale = "UE8M0 (power-of-two) scales" if self.ue8m0 else "fp32 scales"
        return f"groups of {self.group_size}, {scale}, {self.scale_layout}-major"

    def mismatch(self, width: int) -> str:
        """Why a `[T, width]` output cannot be quantized with this spec ('' when it can)."""
        if width % self.group_size:
            return f"D={width} is not a multiple of the group size {self.group_size}"
        return ""


def parse_scale_layouts(values: tuple[str, ...] | list[str]) -> list[str]:
    """Repeatable, comma-separated scale layouts (`row`, `col`, or `both`)."""
    layouts: list[str] = []
    for value in values:
        for part in str(value).split(","):
            key = part.strip().lower()
            names = list(SCALE_LAYOUTS) if key == "both" else [key]
            for name in names:
                if name not in SCALE_LAYOUTS:
                    raise InputError(f"unknown scale layout {part!r}; choose from row, col, both")
                if name not in layouts:
                    layouts.append(name)
    return layouts


def build_fp8_specs(
    group_size: int | None = None, ue8m0: bool = False, scale_layouts: list[str] | None = None
) -> tuple[Fp8Spec, ...]:
    """One spec per scale layout asked for (default: both)."""
    layouts = scale_layouts or list(SCALE_LAYOUTS)
    size = DEFAULT_GROUP_SIZE if group_size is None else group_size
    return tuple(Fp8Spec(group_size=size, ue8m0=ue8m0, column_major=layout == "col") for layout in layouts)
