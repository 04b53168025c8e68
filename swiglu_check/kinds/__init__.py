"""Check kinds: how cases of one backend kind are built, run and judged.

A kind splits the work of one case in three so the runner can isolate failures:

- `prepare(case, settings, cache)`: inputs (may be shared between backends via cache);
- `invoke(backend, case, prepared)`: the backend's call, the only untrusted code;
- `judge(case, prepared, output, settings, backend)`: guards, metrics and the verdict.

A case id must start with `<backend name>/`; the rest names the case itself, so
cases of different backends with the same rest share their inputs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..errors import InputError
from ..results import CaseResult
from ..settings import RunSettings


class Case(Protocol):
    backend: str

    @property
    def kind(self) -> str: ...

    @property
    def case_id(self) -> str: ...

    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Column:
    """One table column: its header, the metric or param it shows, and a formatter."""

    header: str
    render: Callable[[CaseResult], str]
    justify: str = "right"


class Kind(Protocol):
    name: str
    columns: list[Column]

    def cases(self, backend: Any, settings: RunSettings) -> list[Any]: ...

    def parse_case_id(self, backend: str, rest: str) -> Any: ...

    def prepare(self, case: Any, settings: RunSettings, cache: "InputCache") -> Any: ...

    def invoke(self, backend: Any, case: Any, prepared: Any) -> Any: ...

    def judge(self, case: Any, prepared: Any, output: Any, settings: RunSettings, backend: Any) -> CaseResult: ...

    # optional: `skip_reason(case, backend) -> str`, a non-empty reason makes the case a
    # SKIP before anything runs (a precondition of the case, e.g. D % group size)


class InputCache:
    """Keeps the last few prepared inputs so backends of one case share them."""

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._items: dict[Any, Any] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self._items:
            value = self._items.pop(key)
        else:
            value = make()
        self._items[key] = value
        while len(self._items) > self._size:
            self._items.pop(next(iter(self._items)))
        return value

    def clear(self) -> None:
        self._items.clear()


def kind_shapes(settings: RunSettings, arity: int, default: Any) -> tuple[tuple[int, ...], ...]:
    """The `--shape`s of this kind's arity (other arities belong to other kinds), or the
    kind's default when no shape was given."""
    if not settings.shapes:
        return tuple(default)
    return tuple(shape for shape in settings.shapes if len(shape) == arity)


KIND_MODULES: dict[str, str] = {
    "gated": "swiglu_check.kinds.gated",
    "gated-fp8": "swiglu_check.kinds.gated_fp8",
    "linear-w4a16": "swiglu_check.kinds.linear_w4a16",
    "moe-w4a16": "swiglu_check.kinds.moe_w4a16",
}


def get_kind(name: str) -> Kind:
    try:
        module = KIND_MODULES[name]
    except KeyError:
        raise InputError(f"unknown check kind {name!r}; known: {', '.join(KIND_MODULES)}") from None
    return importlib.import_module(module).KIND
