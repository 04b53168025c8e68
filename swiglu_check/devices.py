"""`--devices 0,1,...`: one worker process per device, each running one shard of the run.

Worker i of n runs shard i/n on its device and journals its results to its own file; the
parent waits for all of them and merges the journals. A worker that dies loses only its
cases in flight: whatever it journaled is kept, and every case it never finished becomes
an ERROR row naming the device.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from .backends import Backend
from .errors import InputError
from .isolation import _child_backend, _signal_text, backend_payload
from .journal import Journal, merge_reports, read_journal
from .results import ERROR, CaseResult, Report
from .runner import describe, environment, plan
from .settings import RunSettings, resolve_device
from .shards import in_shard


def parse_devices(text: str) -> list[str]:
    """`0,1` -> cuda:0, cuda:1; names like `cuda:2` or `cpu` are kept (cpu: for testing)."""
    devices = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise InputError(f"empty device in --devices {text!r}")
        devices.append(resolve_device(f"cuda:{part}" if part.isdigit() else part))
    if len(devices) < 2:
        raise InputError("--devices needs at least two devices (use --device for one)")
    return devices


def _worker(payloads: list[tuple[str, Any]], settings: RunSettings, shard: tuple[int, int], path: str,
            isolate: bool, timeout: float | None) -> None:
    from .runner import run

    backends = [_child_backend(p) for p in payloads]
    header = {"settings": describe(settings, backends), "environment": environment(settings.device),
              "fingerprint": f"devices-worker-{shard[0]}/{shard[1]}"}
    journal = Journal(Path(path), header, resume=False)
    try:
        run(backends, settings, isolate=isolate, timeout=timeout, shard=shard, journal=journal)
    finally:
        journal.close()


def run_on_devices(backends: list[Backend], settings: RunSettings, devices: list[str], *,
                   isolate: bool = False, timeout: float | None = None) -> Report:
    """Run the cases spread over `devices` (one process each) and merge the results."""
    payloads = [backend_payload(b) for b in backends]
    for payload in payloads:
        if payload[0] == "object":
            pickle.loads(payload[1])  # fail here, not in a worker, if it cannot be sent
    context = mp.get_context("spawn")
    count = len(devices)
    with tempfile.TemporaryDirectory(prefix="swiglu-check-devices-") as folder:
        workers = []
        for index, device in enumerate(devices, 1):
            path = str(Path(folder) / f"shard-{index}-of-{count}.jsonl")
            process = context.Process(target=_worker, args=(payloads, replace(settings, device=device),
                                                            (index, count), path, isolate, timeout))
            process.start()
            workers.append((device, (index, count), path, process))
        reports = []
        for device, shard, path, process in workers:
            process.join()
            done = read_journal(Path(path))[1] if Path(path).exists() and Path(path).stat().st_size else []
            finished = {r.case_id for r in done}
            lost = [
                CaseResult(case_id=case.case_id, backend=backend.name, kind=backend.kind, params=case.params(),
                           verdict=ERROR, reasons=[f"not run: the worker for {device} {_signal_text(process.exitcode)}"])
                for backend, case in plan(backends, replace(settings, device=device))
                if in_shard(case.case_id, shard) and case.case_id not in finished
            ]
            reports.append(Report(results=done + lost))
    merged = merge_reports(reports)
    described = describe(settings, backends)
    described["devices"] = devices
    order = {case.case_id: i for i, (_, case) in enumerate(plan(backends, settings))}
    merged.results.sort(key=lambda r: order.get(r.case_id, len(order)))
    return Report(results=merged.results, environment=environment(devices[0]), settings=described)
