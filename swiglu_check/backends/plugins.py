"""The user's own backends: `--backend pkg.module:attr` and the `swiglu_check.backends`
entry-point group.

The attribute may be:

- a `Backend` (any kind) or a list of them;
- a plain function `fn(x, *, limit, ...) -> y`, wrapped as a `gated` backend. Besides
  `limit` it may take any of `activation`, `alpha`, `beta`, `layout`, `clamp` or `op`
  (the whole `OpSpec`) as keywords, or `**kwargs` for all of them; the op fields it does
  not take are not passed, so it implements whatever op is being checked;
- a function of no arguments returning one of the above (a factory).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from importlib import metadata
from typing import Any, Callable

from ..errors import InputError
from ..ops import OpSpec
from . import Backend

ENTRY_POINT_GROUP = "swiglu_check.backends"
OP_KEYWORDS = ("activation", "alpha", "beta", "layout", "clamp")
SIGNATURE_HINT = "expected fn(x, *, limit, ...) -> y, a Backend, or a factory returning one"


def load_attribute(spec: str) -> Any:
    """Import `pkg.module:attr.sub` and return the attribute, with one-line errors."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise InputError(f"malformed backend {spec!r}: expected pkg.module:callable")
    try:
        module = _import_from_here(module_name)
    except Exception as exc:
        raise InputError(f"cannot import module {module_name!r} for backend {spec!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"module {module_name!r} has no attribute {attr!r} (backend {spec!r})")
        obj = getattr(obj, part)
    return obj


def _import_from_here(module_name: str) -> Any:
    """Import a module; if its top-level package is not found, try the working directory
    too (a console script, unlike `python -m`, does not put it on sys.path)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or os.getcwd() in sys.path:
            raise
    sys.path.insert(0, os.getcwd())
    return importlib.import_module(module_name)


def to_backends(obj: Any, name: str, source: str) -> list[Backend]:
    """Turn what a plugin points at into Backends (rules in the module docstring)."""
    if isinstance(obj, Backend):
        return [_with_source(obj, source)]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(b, Backend) for b in obj):
        return [_with_source(b, source) for b in obj]
    if not callable(obj):
        raise InputError(f"{source}: {type(obj).__name__} is not a backend ({SIGNATURE_HINT})")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        raise InputError(f"{source}: cannot read the signature of {obj!r} ({SIGNATURE_HINT})") from None
    if not signature.parameters:
        try:
            produced = obj()
        except Exception as exc:
            raise InputError(f"{source}: the backend factory raised {type(exc).__name__}: {exc}") from None
        if callable(produced) and not isinstance(produced, Backend):
            return to_backends(produced, name, source)
        return to_backends(produced, name, source) if produced is not None else _none(source)
    return [wrap_function(obj, name, source)]


def _none(source: str) -> list[Backend]:
    raise InputError(f"{source}: the backend factory returned None ({SIGNATURE_HINT})")


def _with_source(backend: Backend, source: str) -> Backend:
    if backend.source == "builtin":
        backend.source = source
    return backend


def wrap_function(fn: Callable[..., Any], name: str, source: str) -> Backend:
    """A `gated` Backend around `fn(x, *, limit, ...)`, checking the signature first."""
    params = inspect.signature(fn).parameters
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in params.values()):
        raise InputError(f"{source}: {fn.__name__} takes no input tensor argument ({SIGNATURE_HINT})")
    if "limit" not in params and not has_var_kw:
        raise InputError(f"{source}: {fn.__name__} has no 'limit' keyword ({SIGNATURE_HINT})")
    known = {"limit", "op", *OP_KEYWORDS}
    extra_required = [
        p.name for p in list(params.values())[1:]
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in known
    ]
    if extra_required:
        raise InputError(
            f"{source}: {fn.__name__} requires argument(s) {', '.join(extra_required)} that swiglu-check"
            f" cannot supply ({SIGNATURE_HINT})"
        )
    passed = [k for k in OP_KEYWORDS if has_var_kw or k in params]
    wants_op = has_var_kw or "op" in params

    def call(x: Any, op: OpSpec) -> Any:
        kwargs: dict[str, Any] = {"limit": op.limit}
        kwargs.update({k: getattr(op, k) for k in passed})
        if wants_op:
            kwargs["op"] = op
        return fn(x, **kwargs)

    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    return Backend(name=name, kind="gated", call=call, description=doc or f"user function {name}", source=source)


def load_spec(spec: str) -> list[Backend]:
    """The backends named by `pkg.module:attr` (a function gets the spec as its name)."""
    return to_backends(load_attribute(spec), spec, f"plugin {spec}")


def entry_point_backends() -> tuple[list[Backend], dict[str, str]]:
    """Backends registered by installed packages, and the errors of those that failed."""
    backends: list[Backend] = []
    errors: dict[str, str] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry.name} = {entry.value}"
        try:
            backends += to_backends(entry.load(), entry.name, source)
        except InputError as exc:
            errors[source] = str(exc)
        except Exception as exc:
            errors[source] = f"{type(exc).__name__}: {exc}"
    return backends, errors
