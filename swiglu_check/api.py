"""The Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .backends import REGISTRY, Backend
from .dtypes import parse_dtypes
from .errors import InputError
from .inputs import DEFAULT_CLAMP_FRACTION, InputSpec
from .ops import OpSpec, build_op, parse_limits
from .results import Report
from .runner import ResultHook, run
from .settings import RunSettings, Thresholds, parse_shapes, resolve_device

BackendLike = str | Backend


def _as_list(value: Any) -> list[Any]:
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
    max_floor_ratio: float | None = None,
    chunk_bytes: int | None = None,
    sweep: str | None = None,
) -> RunSettings:
    """Validate loose user input (names, strings, numbers) into RunSettings.

    `limits` items may be numbers, None, or strings like "7,10,none"; `shapes` items
    may be (T, D) tuples or "TxD" strings.
    """
    if isinstance(op, OpSpec):
        overrides = dict(activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp)
        spec = OpSpec(**{**op.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    else:
        spec = build_op(op, activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp)

    limit_list: tuple[float | None, ...] | None = None
    if limits is not None:
        items = _as_list(limits)
        limit_list = tuple(parse_limits(["none" if v is None else str(v) for v in items]))
        if not limit_list:
            raise InputError("no limit given")

    dtype_list = tuple(parse_dtypes(_as_list(dtypes))) if dtypes is not None else RunSettings().dtypes
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
    thresholds = Thresholds() if max_floor_ratio is None else Thresholds(max_floor_ratio=max_floor_ratio)
    return RunSettings(
        op=spec,
        limits=limit_list,
        dtypes=dtype_list,
        shapes=shape_list,
        seed=seed,
        device=resolve_device(device),
        inputs=InputSpec(clamp_fraction=clamp_fraction, scale=scale),
        thresholds=thresholds,
        chunk_bytes=chunk_bytes,
        sweep=sweep,
    )


def _as_list_of_shapes(shapes: Any) -> list[Any]:
    if isinstance(shapes, str):
        return [shapes]
    items = list(shapes)
    if len(items) >= 2 and all(isinstance(v, int) for v in items):
        return [tuple(items)]
    return items


def resolve_backends(backends: Any = None, *, kinds: Sequence[str] | None = None) -> list[Backend]:
    """Backends by name (or Backend objects); None means every available backend."""
    if backends is None or backends == []:
        found = REGISTRY.available(kinds)
        if not found:
            raise InputError("no backend is available here; see 'swiglu-check list'")
        return found
    names: list[str] = []
    objects: list[Backend] = []
    for item in _as_list(backends):
        if isinstance(item, Backend):
            objects.append(item)
        else:
            names += [part.strip() for part in str(item).split(",") if part.strip()]
    return objects + REGISTRY.resolve(names)


def check(
    backend: Any = None,
    *,
    on_result: ResultHook | None = None,
    progress: bool = False,
    **settings: Any,
) -> Report:
    """Check backends (names, Backend objects, or None for all available) against the
    reference and return the Report. Keyword arguments are those of `build_settings`."""
    return run(resolve_backends(backend), build_settings(**settings), on_result=on_result, progress=progress)
