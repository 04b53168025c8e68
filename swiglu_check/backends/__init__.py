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
    "swiglu_check.backends.triton_backends",
    "swiglu_check.backends.cuda_backend",
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
    call_out: Callable[..., Any] | None = None  # out-variant: call_out(x, op, out) writes into out
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
        if not backend.name or any(c in backend.name for c in "/ \t\n"):
            raise InputError(f"invalid backend name {backend.name!r}: case ids are backend/...; no '/' or spaces")
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
        self.load_entry_points()

    def load_entry_points(self) -> None:
        """Register the backends of installed packages (entry-point group
        `swiglu_check.backends`); a broken plugin is reported by `list`, never fatal."""
        from .plugins import entry_point_backends

        backends, errors = entry_point_backends()
        self._load_errors.update(errors)
        for backend in backends:
            if backend.name in self._backends and self._backends[backend.name].source != backend.source:
                self._load_errors[backend.source] = f"backend name {backend.name!r} is already taken"
                continue
            self._backends[backend.name] = backend

    def all(self) -> list[Backend]:
        self._load_builtins()
        return list(self._backends.values())

    def names(self) -> list[str]:
        return [b.name for b in self.all()]

    @property
    def load_errors(self) -> dict[str, str]:
        self._load_builtins()
        return dict(self._load_errors)

    def lookup(self, name: str) -> list[Backend]:
        """The backend(s) a name means: a registered name, or `pkg.module:attr`, which
        loads a plugin (a function, a Backend, or a list of Backends) and registers it."""
        self._load_builtins()
        if name in self._backends:
            return [self._backends[name]]
        if ":" in name:
            from .plugins import load_spec

            loaded = load_spec(name)
            for backend in loaded:
                self._backends[backend.name] = backend
            return loaded
        known = ", ".join(sorted(self._backends)) or "none"
        raise InputError(f"unknown backend {name!r}; known backends: {known} (or give pkg.module:callable)")

    def get(self, name: str) -> Backend:
        found = self.lookup(name)
        if len(found) != 1:
            raise InputError(f"{name!r} names {len(found)} backends: {', '.join(b.name for b in found)}")
        return found[0]

    def resolve(self, names: Iterable[str]) -> list[Backend]:
        """Backends asked for by name; each must exist and be available."""
        chosen: list[Backend] = []
        for name in names:
            for backend in self.lookup(name):
                ok, why = backend.available()
                if not ok:
                    raise BackendUnavailable(f"backend {backend.name!r} is unavailable: {why}")
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
