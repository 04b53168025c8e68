"""The runner: backends x cases -> a Report, one backend's failure never stopping the rest."""

from __future__ import annotations

import platform
import sys
import time
import traceback
from dataclasses import asdict
from importlib import metadata
from typing import Any, Callable, Iterable

import torch

from ._version import __version__
from .backends import Backend
from .errors import InputError
from .isolation import run_isolated
from .journal import Journal
from .kinds import KIND_MODULES, InputCache, get_kind
from .results import ERROR, SKIP, CaseResult, Report
from .settings import RunSettings
from .shards import in_shard

ResultHook = Callable[[CaseResult], None]


def plan(backends: Iterable[Backend], settings: RunSettings) -> list[tuple[Backend, Any]]:
    """Every (backend, case) pair, ordered so that backends of one case run back to back
    (the inputs are prepared once and shared)."""
    if settings.sweep:
        known = sorted({name for kind in KIND_MODULES for name in getattr(get_kind(kind), "sweeps", ())})
        if settings.sweep not in known:
            raise InputError(f"unknown sweep {settings.sweep!r}; known: {', '.join(known) or 'none'}")
    groups: dict[tuple[str, str], list[tuple[Backend, Any]]] = {}
    for backend in backends:
        kind = get_kind(backend.kind)
        if settings.sweep and settings.sweep not in getattr(kind, "sweeps", ()):
            continue  # a named sweep belongs to the kinds that define it
        for case in kind.cases(backend, settings):
            shared = case.case_id[len(backend.name) + 1 :]
            groups.setdefault((backend.kind, shared), []).append((backend, case))
    return [pair for group in groups.values() for pair in group]


def run_case(backend: Backend, case: Any, settings: RunSettings, cache: InputCache) -> CaseResult:
    """One case: never raises; a failure anywhere becomes an ERROR result."""
    kind = get_kind(backend.kind)
    device_type = settings.device_type
    ok, why = backend.supports(case.params().get("dtype", ""), device_type, getattr(case, "op", None))
    if ok and hasattr(kind, "skip_reason"):  # a kind's own preconditions (e.g. D % group size)
        why = kind.skip_reason(case, backend)
        ok = not why
    if not ok:
        return _bare_result(case, backend, SKIP, why)
    estimate = getattr(kind, "memory_estimate", None)
    if settings.max_memory is not None and estimate is not None:
        needed = estimate(case, settings)
        if needed > settings.max_memory:
            return _bare_result(case, backend, ERROR, f"needs about {_gib(needed)} (inputs, output and reference"
                                f" chunks), over the --max-memory budget of {_gib(settings.max_memory)}; not run")
    try:
        prepared = kind.prepare(case, settings, cache)
    except Exception as exc:
        return _bare_result(case, backend, ERROR, f"internal error preparing inputs: {_one_line(exc)}", exc)

    start = time.perf_counter()
    try:
        output = kind.invoke(backend, case, prepared)
        if device_type == "cuda":
            torch.cuda.synchronize(settings.device)
    except Exception as exc:
        result = _bare_result(case, backend, ERROR, f"backend raised {_one_line(exc)}", exc)
        result.seconds = time.perf_counter() - start
        return result
    seconds = time.perf_counter() - start

    try:
        result = kind.judge(case, prepared, output, settings, backend)
    except Exception as exc:
        result = _bare_result(case, backend, ERROR, f"could not judge the output: {_one_line(exc)}", exc)
    result.seconds = seconds
    result.interpreted = backend.interpreted(device_type)
    return result


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:.1f} MiB"


def run(
    backends: Iterable[Backend],
    settings: RunSettings,
    *,
    on_result: ResultHook | None = None,
    progress: bool = False,
    isolate: bool = False,
    timeout: float | None = None,
    shard: tuple[int, int] | None = None,
    journal: Journal | None = None,
) -> Report:
    """Run every case of every backend (of this shard) and gather a Report.

    `journal` makes results durable one by one and supplies the cases a resumed run
    skips; `isolate` (implied by `timeout`) runs each backend in a child process."""
    backends = list(backends)
    pairs = [pair for pair in plan(backends, settings) if in_shard(pair[1].case_id, shard)]
    finished = journal.finished if journal is not None else {}
    todo = [pair for pair in pairs if pair[1].case_id not in finished]
    fresh: dict[str, CaseResult] = {}
    with _progress(len(todo), enabled=progress) as advance:

        def record(result: CaseResult) -> None:
            fresh[result.case_id] = result
            if journal is not None:
                journal.append(result)
            if on_result is not None:
                on_result(result)
            advance(result.case_id)

        if isolate or timeout is not None:
            run_isolated(todo, settings, timeout=timeout, on_result=record)
        else:
            cache = InputCache()
            for backend, case in todo:
                record(run_case(backend, case, settings, cache))
            cache.clear()
    results = [finished.get(case.case_id) or fresh[case.case_id] for _, case in pairs]
    described = describe(settings, backends)
    if shard is not None:
        described["shard"] = f"{shard[0]}/{shard[1]}"
    return Report(results=results, environment=environment(settings.device), settings=described)


def _bare_result(case: Any, backend: Backend, verdict: str, reason: str, exc: BaseException | None = None) -> CaseResult:
    return CaseResult(
        case_id=case.case_id,
        backend=backend.name,
        kind=backend.kind,
        params=case.params(),
        verdict=verdict,
        reasons=[reason],
        details="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc else "",
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else '(no message)'}"


class _progress:
    """A rich progress bar on stderr for long interactive runs; a no-op otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 1 and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("cases", total=self.total)
        return lambda label: self._bar.update(task, advance=1, description=label[:60])

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    """What produced the numbers: versions and the device."""
    env: dict[str, Any] = {
        "swiglu_check": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": _version_of("triton"),
        "device": device,
        "device_name": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda"] = torch.version.cuda
    return env


def describe(settings: RunSettings, backends: list[Backend]) -> dict[str, Any]:
    """The settings of a run, as JSON."""
    return {
        "backends": [b.name for b in backends],
        "op": settings.op.to_dict(),
        "limits": list(settings.limits) if settings.limits is not None else [settings.op.limit],
        "dtypes": list(settings.dtypes),
        "shapes": [list(s) for s in settings.shapes] if settings.shapes else None,
        "seed": settings.seed,
        "device": settings.device,
        "inputs": asdict(settings.inputs),
        "thresholds": asdict(settings.thresholds),
        "max_memory": settings.max_memory,
        "fp8": [asdict(spec) for spec in settings.fp8],
        "sweep": settings.sweep,
    }
