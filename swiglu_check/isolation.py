"""`--isolate`: each backend runs in a child process, so a crash costs only that backend.

A segfault, an abort, or a CUDA illegal memory access (which poisons the whole CUDA
context) kills or wrecks the child, never the tool: the case in flight becomes an ERROR
row naming the signal, and the backend's remaining cases become ERROR rows too (its
process is gone). `--timeout` bounds each case: a case that runs longer is killed and
reported as ERROR, and the backend's other cases go on in a fresh child.

Children are started with the `spawn` method (a fork would inherit the parent's CUDA
state). A backend is sent to the child pickled when it can be; otherwise the child looks
it up by name (built-ins, entry points and `pkg.module:callable` all resolve there).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterable

from .backends import REGISTRY, Backend
from .kinds import InputCache
from .results import ERROR, CaseResult
from .settings import RunSettings

ResultHook = Callable[[CaseResult], None]
_POLL_SECONDS = 0.05
_START_TIMEOUT = 300.0  # importing torch and building a backend may take a while


def backend_payload(backend: Backend) -> tuple[str, Any]:
    """What the child needs to get the backend: the object itself, or its name."""
    try:
        return "object", pickle.dumps(backend)
    except Exception:
        return "name", backend.name


def _child_backend(payload: tuple[str, Any]) -> Backend:
    how, value = payload
    return pickle.loads(value) if how == "object" else REGISTRY.get(value)


def _child_main(conn: Connection, payload: tuple[str, Any], settings: RunSettings) -> None:
    """Child loop: receive a case, send back its result (as a dict); None ends."""
    from .runner import run_case

    try:
        backend = _child_backend(payload)
    except Exception as exc:
        conn.send({"fatal": f"cannot load the backend in a child process: {type(exc).__name__}: {exc}"})
        return
    conn.send({"ready": True})
    cache = InputCache()
    while True:
        case = conn.recv()
        if case is None:
            return
        conn.send(run_case(backend, case, settings, cache).to_dict())


def _signal_text(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name} ({-exitcode})"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _error(backend: Backend, case: Any, reason: str) -> CaseResult:
    return CaseResult(case_id=case.case_id, backend=backend.name, kind=backend.kind, params=case.params(),
                      verdict=ERROR, reasons=[reason])


class _Child:
    def __init__(self, backend: Backend, settings: RunSettings) -> None:
        context = mp.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_child_main, args=(child_conn, backend_payload(backend), settings),
                                       daemon=True)
        self.process.start()
        child_conn.close()

    def receive(self, timeout: float | None) -> tuple[str, Any]:
        """('ok', message), ('timeout', None) or ('died', exitcode)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self.conn.poll(_POLL_SECONDS):
                    return "ok", self.conn.recv()
            except (EOFError, OSError):
                self.process.join(5)
                return "died", self.process.exitcode
            if not self.process.is_alive():
                if self.conn.poll(0):
                    continue
                self.process.join(5)
                return "died", self.process.exitcode
            if deadline is not None and time.monotonic() > deadline:
                return "timeout", None

    def stop(self, kill: bool = False) -> None:
        if kill or not self.process.is_alive():
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_backend_isolated(backend: Backend, cases: list[Any], settings: RunSettings, *,
                         timeout: float | None, on_result: ResultHook) -> None:
    """Run one backend's cases in child processes (rules in the module docstring)."""
    remaining = list(cases)
    while remaining:
        child = _Child(backend, settings)
        status, message = child.receive(_START_TIMEOUT)
        if status != "ok" or "fatal" in message:
            why = message["fatal"] if status == "ok" else f"the child process {_signal_text(message)} while starting"
            child.stop(kill=True)
            for case in remaining:
                on_result(_error(backend, case, why))
            return
        while remaining:
            case = remaining.pop(0)
            child.conn.send(case)
            status, message = child.receive(timeout)
            if status == "ok":
                on_result(CaseResult.from_dict(message))
                continue
            child.stop(kill=True)
            if status == "timeout":
                on_result(_error(backend, case, f"timed out after {timeout:g} s; the case was killed"))
                break  # go on with a fresh child
            on_result(_error(backend, case, f"the backend's process {_signal_text(message)} during this case"))
            for rest in remaining:
                on_result(_error(backend, rest, f"not run: the backend's process died on {case.case_id}"))
            return
        else:
            child.stop()


def run_isolated(pairs: Iterable[tuple[Backend, Any]], settings: RunSettings, *,
                 timeout: float | None, on_result: ResultHook) -> None:
    """Every backend's cases, one backend at a time, each in its own child process."""
    groups: dict[str, tuple[Backend, list[Any]]] = {}
    for backend, case in pairs:
        groups.setdefault(backend.name, (backend, []))[1].append(case)
    for backend, cases in groups.values():
        run_backend_isolated(backend, cases, settings, timeout=timeout, on_result=on_result)
