"""The Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .backends import REGISTRY, Backend
from .backends.plugins import to_backends
from .dtypes import parse_dtypes
from .errors import InputError
from .inputs import DEFAULT_CLAMP_FRACTION, InputSpec
from .kinds import get_kind
from .ops import OpSpec, build_op, parse_limits
from .quant import build_fp8_specs, parse_scale_layouts
from .results import Report
from .runner import ResultHook, run
from .settings import RunSettings, Thresholds, parse_shapes, resolve_device

BackendLike = str | Backend


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def build_settings(
    *,
    op: str | OpSpec = "deepseek-v4",
    activation: str | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    layout: str | None = None,
    clamp: str | None = None,
    limits: Any = None,
    dtypes: Any = None,
    shapes: Any = None,
    device: str = "auto",
    seed: int = 0,
    clamp_fraction: float = DEFAULT_CLAMP_FRACTION,
    scale: float | None = None,
    input_view: str = "contiguous",
    input_sets: Any = None,
    max_floor_ratio: float | None = None,
    thresholds: Thresholds | None = None,
    chunk_bytes: int | None = None,
    group_size: int | None = None,
    ue8m0: bool = False,
    scale_layouts: Any = None,
    sweep: str | None = None,
) -> RunSettings:
    """Validate loose user input (names, strings, numbers) into RunSettings.

    `limits` items may be numbers, None, or strings like "7,10,none"; `shapes` items
    may be (T, D) tuples or "TxD" strings; `thresholds` wins over `max_floor_ratio`.
    `group_size`, `ue8m0` and `scale_layouts`
    ("row", "col", "both") set the FP8 quantization of `gated-fp8` cases.
    """
    if isinstance(op, OpSpec):
        overrides = dict(activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp)
        spec = OpSpec(**{**op.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    else:
        spec = build_op(op, activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp)

    limit_list: tuple[float | None, ...] | None = None
    if limits is not None:
        items = as_list(limits)
        limit_list = tuple(parse_limits(["none" if v is None else str(v) for v in items]))
        if not limit_list:
            raise InputError("no limit given")

    dtype_list = tuple(parse_dtypes(as_list(dtypes))) if dtypes is not None else RunSettings().dtypes
    if not dtype_list:
        raise InputError("no dtype given")

    shape_list = None
    if shapes is not None:
        text = [s if isinstance(s, str) else "x".join(str(int(v)) for v in s) for s in _as_list_of_shapes(shapes)]
        shape_list = tuple(parse_shapes(text))
        if not shape_list:
            raise InputError("no shape given")

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if thresholds is None:
        thresholds = Thresholds() if max_floor_ratio is None else Thresholds(max_floor_ratio=max_floor_ratio)
    return RunSettings(
        op=spec,
        limits=limit_list,
        dtypes=dtype_list,
        shapes=shape_list,
        seed=seed,
        device=resolve_device(device),
        inputs=InputSpec(clamp_fraction=clamp_fraction, scale=scale, view=input_view),
        thresholds=thresholds,
        chunk_bytes=chunk_bytes,
        input_sets=parse_input_sets(input_sets) if input_sets is not None else None,
        fp8=build_fp8_specs(group_size, ue8m0, parse_scale_layouts(as_list(scale_layouts)) or None),
        sweep=sweep,
    )


def _as_list_of_shapes(shapes: Any) -> list[Any]:
    if isinstance(shapes, str):
        return [shapes]
    items = list(shapes)
    if len(items) >= 2 and all(isinstance(v, int) for v in items):
        return [tuple(items)]
    return items


def parse_input_sets(values: Any) -> tuple[str, ...]:
    """Comma-separated or repeated input set names, validated, order kept."""
    names: list[str] = []
    for value in as_list(values):
        for part in str(value).split(","):
            name = part.strip()
            InputSpec(distribution=name)  # raises InputError for an unknown set
            if name not in names:
                names.append(name)
    if not names:
        raise InputError("no input set given")
    return tuple(names)


def parse_kinds(values: Any) -> list[str] | None:
    """Comma-separated or repeated check kinds; None when none were given."""
    names = [part.strip() for value in as_list(values) for part in str(value).split(",") if part.strip()]
    for name in names:
        get_kind(name)  # raises InputError for an unknown kind
    return names or None


def resolve_backends(backends: Any = None, *, kinds: Sequence[str] | None = None) -> list[Backend]:
    """Backends by name (or Backend objects); None means every available backend.

    `kinds` keeps only backends of those check kinds; naming a backend of another kind
    together with `kinds` is an error rather than a silent drop."""
    if backends is None or backends == []:
        found = REGISTRY.available(kinds)
        if not found:
            wanted = f" of kind {', '.join(kinds)}" if kinds else ""
            raise InputError(f"no backend{wanted} is available here; see 'swiglu-check list'")
        return found
    names: list[str] = []
    objects: list[Backend] = []
    for item in backends if isinstance(backends, (list, tuple)) else [backends]:
        if isinstance(item, Backend):
            objects.append(item)
        elif callable(item):
            name = getattr(item, "__qualname__", type(item).__name__)
            objects += to_backends(item, name, f"python object {name}")
        else:
            names += [part.strip() for part in str(item).split(",") if part.strip()]
    chosen = objects + REGISTRY.resolve(names)
    if kinds:
        wrong = [b.name for b in chosen if b.kind not in kinds]
        if wrong:
            raise InputError(f"backend(s) {', '.join(wrong)} are not of kind {', '.join(kinds)}")
    return chosen


def check(
    backend: Any = None,
    *,
    kinds: Any = None,
    on_result: ResultHook | None = None,
    progress: bool = False,
    **settings: Any,
) -> Report:
    """Check backends against the reference and return the Report.

    `backend`: a name, `pkg.module:callable`, a `Backend`, a function
    `fn(x, *, limit, ...) -> y`, a list of these, or None for every available backend. Keyword arguments are those of `build_settings`."""
    chosen = resolve_backends(backend, kinds=parse_kinds(kinds))
    return run(chosen, build_settings(**settings), on_result=on_result, progress=progress)
