"""The backend registry: one place for built-in backends and the user's own.

A backend is a named implementation under test of one check *kind*:

- `gated`: `call(x, op) -> y`, x `[T, 2D]`, y `[T, D]` in x's dtype;
- other kinds (`gated-fp8`, `linear-w4a16`, `moe-w4a16`) define their own call.

Built-in backends live in the modules listed in `BUILTIN_MODULES`; importing such a
module registers its backends. Those modules import heavy or optional dependencies
(Triton, the CUDA extension) lazily, inside `available()` or the call, so that `list`
works everywhere and reports why a backend cannot run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import BackendUnavailable, InputError

Availability = tuple[bool, str]

ALL_DTYPES = ("fp32", "fp16", "bf16")

BUILTIN_MODULES: tuple[str, ...] = (
    "swiglu_check.backends.torch_backends",
    "swiglu_check.kernels.w4a16.backends",
)


@dataclass
class Backend:
    """One implementation under test."""

    name: str
    kind: str
    call: Callable[..., Any]
    description: str = ""
    dtypes: tuple[str, ...] = ALL_DTYPES
    devices: tuple[str, ...] = ("cpu", "cuda")
    check_available: Callable[[], Availability] | None = None
    check_supports: Callable[[Any], Availability] | None = None
    interpreted_on: tuple[str, ...] = ()
    source: str = "builtin"
    extra: dict[str, Any] = field(default_factory=dict)

    def available(self) -> Availability:
        """(ok, reason): whether this backend can run in this environment at all."""
        if self.check_available is None:
            return True, ""
        try:
            return self.check_available()
        except Exception as exc:  # an availability probe must never crash the tool
            return False, f"availability check raised {type(exc).__name__}: {exc}"

    def supports(self, dtype: str, device_type: str, op: Any = None) -> Availability:
        """(ok, reason): whether this backend handles one dtype, device and op."""
        if dtype not in self.dtypes:
            return False, f"{self.name} does not support {dtype}"
        if device_type not in self.devices:
            return False, f"{self.name} does not run on {device_type}"
        if op is not None and self.check_supports is not None:
            return self.check_supports(op)
        return True, ""

    def interpreted(self, device_type: str) -> bool:
        """True when rows on this device run through an interpreter (Triton on CPU)."""
        return device_type in self.interpreted_on


class Registry:
    """Backends by name. Built-ins load on first use; plugins register explicitly."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._load_errors: dict[str, str] = {}
        self._builtins_loaded = False

    def register(self, backend: Backend, *, replace: bool = False) -> Backend:
        if backend.name in self._backends and not replace:
            existing = self._backends[backend.name]
            raise InputError(
                f"backend name {backend.name!r} is already registered (by {existing.source})"
            )
        self._backends[backend.name] = backend
        return backend

    def unregister(self, name: str) -> None:
        self._backends.pop(name, None)

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in BUILTIN_MODULES:
            try:
                importlib.import_module(module)
            except Exception as exc:  # report, never crash `list`
                self._load_errors[module] = f"{type(exc).__name__}: {exc}"

    def all(self) -> list[Backend]:
        self._load_builtins()
        return list(self._backends.values())

    def names(self) -> list[str]:
        return [b.name for b in self.all()]

    @property
    def load_errors(self) -> dict[str, str]:
        self._load_builtins()
        return dict(self._load_errors)

    def get(self, name: str) -> Backend:
        self._load_builtins()
        try:
            return self._backends[name]
        except KeyError:
            known = ", ".join(sorted(self._backends)) or "none"
            raise InputError(f"unknown backend {name!r}; known backends: {known}") from None

    def resolve(self, names: Iterable[str]) -> list[Backend]:
        """Backends asked for by name; each must exist and be available."""
        chosen = []
        for name in names:
            backend = self.get(name)
            ok, why = backend.available()
            if not ok:
                raise BackendUnavailable(f"backend {name!r} is unavailable: {why}")
            if backend not in chosen:
                chosen.append(backend)
        return chosen

    def available(self, kinds: Iterable[str] | None = None) -> list[Backend]:
        wanted = set(kinds) if kinds is not None else None
        return [
            b for b in self.all() if (wanted is None or b.kind in wanted) and b.available()[0]
        ]


REGISTRY = Registry()


def register(backend: Backend, *, replace: bool = False) -> Backend:
    """Register a backend in the global registry (what built-in modules and plugins call)."""
    return REGISTRY.register(backend, replace=replace)
