"""`swiglu-check bench`: speed of every backend, against the device's own copy bandwidth.

Method (the device README's METHOD.md): CUDA events around each call, warm-up first,
median of many calls, and inputs rotated among enough sets that they do not all fit in
L2 (so small shapes are not flattered by the cache). Calls are enqueued ahead of the GPU
(behind a short stall), so host launch overhead is not counted as kernel time. Bytes count what must cross device
memory: every input read once plus every output written once. The copy bandwidth is
measured in the same run, by a large device-to-device copy, counting read plus write.

Beside it, every workload gets a same-size copy: a device copy moving the workload's own
bytes (half read, half written), rotated and timed by the same method in the same run.
A small launch does not reach the large copy's bandwidth even as a plain copy (fixed
per-launch cost: ramp-up, tail, the launch gap), so "% same-size copy" says how close a
kernel is to what its size allows, and "% copy" (the issues' metric) what it reaches.

Two timing methods (`--timing`): `events` (above; the issues' method) and `graph`
(replays of a CUDA graph of back-to-back calls: device time without the per-launch gaps
between kernels, as in a graph-captured model). Workloads marked `graph` are always timed
by graph; a backend whose calls cannot be captured falls back to events, and its row says so.

A check kind contributes workloads through `bench_workloads(backend, settings)`; a
workload may name a group and mark itself as the group's reference, so the table can
print speed-up ratios measured in the same run (for example against cuBLAS).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from .backends import Backend
from .errors import InputError
from .kinds import get_kind
from .settings import RunSettings

ROTATION_BYTES = 256 << 20  # at least this much input across the rotated sets (5x the H100's 50 MB L2)
MAX_SETS = 16
# A same-size copy reads half the bytes a gated kernel reads (1.5TD of 4TD at bf16), so
# it may rotate more sets to keep its sources past the L2 cache just the same.
COPY_MAX_SETS = 64
TIMING_METHODS = ("events", "graph")


@dataclass
class Workload:
    """One thing to time. `call(i)` runs on input set `i % sets`."""

    backend: str
    label: str
    call: Callable[[int], Any]
    bytes_moved: int
    sets: int = 1
    flops: int = 0
    group: str = ""  # workloads of one group are compared to the group's reference
    reference: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    graph: bool = False  # time CUDA-graph replays (device time without the host's launch cost)


@dataclass
class Timing:
    backend: str
    label: str
    median_us: float
    min_us: float
    gb_per_s: float
    pct_copy: float
    tflops: float
    group: str
    reference: bool
    params: dict[str, Any]
    error: str = ""
    speedup: float | None = None  # reference time / this time, within the group
    method: str = "events"  # how this row was timed: events or graph
    same_size_copy_us: float = math.nan  # a copy of the same bytes, same method, same run
    pct_same_size_copy: float = math.nan  # this row's bandwidth over that copy's, in %
    note: str = ""  # e.g. why a row was timed by events in a graph run

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rotation_sets(bytes_per_set: int, limit: int = MAX_SETS) -> int:
    """How many input sets to rotate so they exceed `ROTATION_BYTES` together."""
    return max(1, min(limit, math.ceil(ROTATION_BYTES / max(bytes_per_set, 1))))


_QUEUE_WINDOW = 50  # timed calls enqueued behind one GPU stall
_MAX_STALL_MS = 100.0


def time_call(call: Callable[[int], Any], sets: int, *, warmup: int = 10, reps: int = 100,
              min_total_ms: float = 30.0) -> list[float]:
    """Milliseconds of each timed call (CUDA events), after warm-up.

    Events time the GPU, but if the host needs longer to launch a call (Python and
    launcher overhead, typically several microseconds or more) than the GPU needs to run
    it, the GPU idles between calls and the events measure the host. So each window of timed calls is enqueued
    behind a short GPU stall (`torch.cuda._sleep`) long enough for the host to launch
    the whole window: the calls then run back to back and each pair of events brackets
    one call's GPU work.
    """
    for i in range(warmup):
        call(i % sets)
    torch.cuda.synchronize()
    # size the repetition count so short kernels are timed over a useful total
    probe_start, probe_end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    host_start = time.perf_counter()
    probe_start.record()
    for i in range(5):
        call(i % sets)
    probe_end.record()
    host_ms = (time.perf_counter() - host_start) * 1e3 / 5
    torch.cuda.synchronize()
    per_call = max(probe_start.elapsed_time(probe_end) / 5, 1e-3)
    reps = max(reps, min(2000, int(min_total_ms / per_call)))
    stall_cycles = int(min(_MAX_STALL_MS, 1.5 * host_ms * _QUEUE_WINDOW) * _cycles_per_ms()) \
        if hasattr(torch.cuda, "_sleep") else 0
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if i % _QUEUE_WINDOW == 0 and hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(stall_cycles)
        starts[i].record()
        call(i % sets)
        ends[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


@functools.lru_cache(maxsize=None)
def _cycles_per_ms() -> float:
    """GPU clock cycles per millisecond of `torch.cuda._sleep`, measured once."""
    cycles = 10_000_000
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(cycles // 10)  # wake the clocks up
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    torch.cuda.synchronize()
    return cycles / max(start.elapsed_time(end), 1e-3)


def time_graph(call: Callable[[int], Any], sets: int, *, replays: int = 15, min_calls: int = 16) -> list[float]:
    """Milliseconds per call, from CUDA-graph replays of back-to-back calls cycling through
    the input sets: device time without the host's per-launch cost (small launches whose
    host overhead exceeds their kernel time are otherwise timed at the host's pace)."""
    calls = sets * math.ceil(min_calls / sets)
    for i in range(max(3, sets)):  # compile, allocate and warm up outside the capture
        call(i % sets)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            call(i % sets)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    del graph
    return times


# The timing functions by method name (tests substitute fakes here).
TIMERS: dict[str, Callable[..., list[float]]] = {"events": time_call, "graph": time_graph}


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_copy(nbytes: int, device: str, method: str = "events") -> tuple[int, float]:
    """(bytes moved, median ms) of a device-to-device copy moving about `nbytes` (read +
    write), its sources rotated like a workload's inputs, timed by `method`."""
    elements = max(1, nbytes // 4)  # bf16: half the bytes read, half written
    sets = rotation_sets(2 * elements, limit=COPY_MAX_SETS)
    sources = [torch.empty(elements, dtype=torch.bfloat16, device=device).normal_() for _ in range(sets)]
    target = torch.empty_like(sources[0])  # one output buffer, like a kernel's reused allocation
    times = TIMERS[method](lambda i: target.copy_(sources[i]), sets)
    return 4 * elements, statistics.median(times)


def copy_bandwidth(device: str, nbytes: int = 1 << 31) -> float:
    """Device-to-device copy bandwidth in bytes/s of a 1 GiB copy (2 GiB read plus
    written), timed by CUDA events whatever the bench's method: at this size a launch's
    fixed cost is negligible, while CUDA-graph replays of the same copy measured 19% slower
    on the H100 (2433 against 3005 GB/s in one run), which made "% copy" exceed 100."""
    moved, median_ms = time_copy(nbytes, device, "events")
    return moved / (median_ms * 1e-3)


class SameSizeCopies:
    """Same-size copy timings of one run, measured once per (bytes, method).

    `timer(nbytes, method) -> (bytes moved, median ms)`; `time_copy` on the bench device
    by default (tests pass a fake)."""

    def __init__(self, timer: Callable[[int, str], tuple[int, float]]) -> None:
        self._timer = timer
        self._cache: dict[tuple[int, str], tuple[int, float]] = {}

    def get(self, nbytes: int, method: str) -> tuple[int, float]:
        key = (nbytes, method)
        if key not in self._cache:
            self._cache[key] = self._timer(nbytes, method)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)


def pct_of_same_size_copy(bytes_moved: int, median_ms: float, copy_bytes: int, copy_ms: float) -> float:
    """The workload's bandwidth over the same-size copy's, in % (the copy may move a few
    bytes fewer than the workload: bytes are rounded to whole bf16 pairs)."""
    if not (median_ms > 0 and copy_ms > 0 and copy_bytes > 0):
        return math.nan
    return 100.0 * (bytes_moved / median_ms) / (copy_bytes / copy_ms)


def time_workload(w: Workload, method: str) -> tuple[list[float], str, str]:
    """(milliseconds per call, the method used, a note). `graph` falls back to events
    when the workload's calls cannot be captured; workloads marked `graph` always use it."""
    if w.graph or method == "graph":
        try:
            return TIMERS["graph"](w.call, w.sets), "graph", ""
        except Exception as exc:
            if w.graph:
                raise
            note = f"events: graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            _synchronize()
            return TIMERS["events"](w.call, w.sets), "events", note
    return TIMERS["events"](w.call, w.sets), "events", ""


def measure(workloads: Iterable[Workload], copy_bytes_per_s: float, method: str = "events",
            copies: SameSizeCopies | None = None, device: str = "cuda") -> list[Timing]:
    """Time every workload by `method` (`events` or `graph`), each beside a same-size
    copy timed the same way; a workload that raises gets a row with its error."""
    if method not in TIMING_METHODS:
        raise ValueError(f"unknown timing method {method!r}; expected one of {', '.join(TIMING_METHODS)}")
    if copies is None:
        copies = SameSizeCopies(lambda nbytes, how: time_copy(nbytes, device, how))
    timings: list[Timing] = []
    for w in workloads:
        try:
            times, used, note = time_workload(w, method)
            median_ms = statistics.median(times)
            seconds = median_ms * 1e-3
            timing = Timing(
                w.backend, w.label, median_ms * 1e3, min(times) * 1e3, w.bytes_moved / seconds / 1e9,
                100.0 * w.bytes_moved / seconds / copy_bytes_per_s, w.flops / seconds / 1e12 if w.flops else 0.0,
                w.group, w.reference, w.params, method=used, note=note,
            )
            copy_bytes, copy_ms = copies.get(w.bytes_moved, used)
            timing.same_size_copy_us = copy_ms * 1e3
            timing.pct_same_size_copy = pct_of_same_size_copy(w.bytes_moved, median_ms, copy_bytes, copy_ms)
            timings.append(timing)
        except Exception as exc:  # one broken backend never stops the benchmark
            timings.append(Timing(w.backend, w.label, math.nan, math.nan, math.nan, math.nan, 0.0,
                                  w.group, w.reference, w.params, error=f"{type(exc).__name__}: {exc}",
                                  method=method))
        _synchronize()
    add_speedups(timings)
    return timings


def add_speedups(timings: list[Timing]) -> None:
    """speedup = the group's reference time over this row's time (both in this run)."""
    references = {t.group: t for t in timings if t.reference and t.group and not t.error}
    for t in timings:
        ref = references.get(t.group)
        if ref is not None and not t.error and t is not ref:
            t.speedup = ref.median_us / t.median_us


def require_cuda(settings: RunSettings) -> None:
    """`bench` times CUDA devices only: a one-line InputError (exit 2) otherwise."""
    if settings.device_type != "cuda":
        raise InputError("bench needs a CUDA GPU and none is available (torch.cuda.is_available() is False)")


def workloads_for(backends: Iterable[Backend], settings: RunSettings, shapes: Any = None) -> list[Workload]:
    """Every backend's workloads, from its kind; a reference workload offered by several
    backends (e.g. the same cuBLAS matmul) is kept once."""
    seen: set[tuple[str, str, str]] = set()
    found: list[Workload] = []
    for backend in backends:
        make = getattr(get_kind(backend.kind), "bench_workloads", None)
        for w in make(backend, settings, shapes) if make else []:
            key = (w.backend, w.label, w.group)
            if key not in seen:
                seen.add(key)
                found.append(w)
    return found
