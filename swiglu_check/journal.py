"""Crash-safe results: a JSON-lines file written one case at a time.

The first line describes the run (`{"type": "run", ...}`: settings, environment); each
finished case appends `{"type": "result", ...}` and is flushed and fsynced before the
next case starts, so a run killed with SIGKILL loses at most the case in flight. A torn
last line (the kill landed mid-write) is ignored on reading. `--resume` reads the file,
skips the finished cases and appends the rest; `swiglu-check report PATH` rebuilds the
report from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError
from .results import REPORT_SCHEMA, CaseResult, Report

JOURNAL_SCHEMA = "swiglu-check/results"
JOURNAL_VERSION = 1


class Journal:
    """An open results file; `append` makes one result durable."""

    def __init__(self, path: Path, header: dict[str, Any], *, resume: bool) -> None:
        self.path = path
        self.finished: dict[str, CaseResult] = {}
        if resume and path.exists() and path.stat().st_size:
            old_header, results = read_journal(path)
            if old_header.get("fingerprint") != header.get("fingerprint"):
                raise InputError(
                    f"{path} holds results of a run with other settings; resume with the same"
                    " options, or write to a new --results file"
                )
            self.finished = {r.case_id: r for r in results}
            self._file = path.open("a", encoding="utf-8")
            self._drop_torn_tail()
        else:
            if path.exists() and path.stat().st_size and not resume:
                raise InputError(f"{path} exists; pass --resume to continue it, or choose a new --results file")
            self._file = path.open("w", encoding="utf-8")
            self._write({"type": "run", "schema": JOURNAL_SCHEMA, "version": JOURNAL_VERSION, **header})

    def _drop_torn_tail(self) -> None:
        """Make sure the next record starts on a fresh line after a torn write."""
        with self.path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                self._file.write("\n")
                self._file.flush()

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, result: CaseResult) -> None:
        self._write({"type": "result", **result.to_dict()})

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path) -> tuple[dict[str, Any], list[CaseResult]]:
    """The run header and the results (the last record of a case wins)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"results file {path} does not exist") from None
    header: dict[str, Any] = {}
    results: dict[str, CaseResult] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # torn last line of a killed run
            raise InputError(f"{path}:{number} is not a JSON record") from None
        if record.get("type") == "run":
            if record.get("schema") != JOURNAL_SCHEMA:
                raise InputError(f"{path} is not a swiglu-check results file")
            if record.get("version", 0) > JOURNAL_VERSION:
                raise InputError(f"{path} was written by a newer swiglu-check; upgrade")
            header = header or record
        elif record.get("type") == "result":
            result = CaseResult.from_dict(record)
            results[result.case_id] = result
    if not header:
        raise InputError(f"{path} is not a swiglu-check results file (no run record)")
    return header, list(results.values())


def load_report(path: Path) -> Report:
    """A Report from a results file (JSON lines) or a report JSON."""
    try:
        head = path.open(encoding="utf-8").read(1 << 16)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.startswith("{") and f'"{JOURNAL_SCHEMA}"' in first:
        header, results = read_journal(path)
        return Report(results=results, environment=header.get("environment", {}), settings=header.get("settings", {}))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise InputError(f"{path} is neither a results file nor a report JSON") from None
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise InputError(f"{path} is neither a results file nor a report JSON")
    return Report.from_dict(data)


def merge_reports(reports: Iterable[Report]) -> Report:
    """One report from shard reports; a case present in two of them is an error."""
    merged: dict[str, CaseResult] = {}
    environment: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for report in reports:
        environment = environment or report.environment
        settings = settings or {k: v for k, v in report.settings.items() if k != "shard"}
        for result in report.results:
            if result.case_id in merged:
                raise InputError(f"case {result.case_id} appears in more than one input; were shards overlapping?")
            merged[result.case_id] = result
    return Report(results=list(merged.values()), environment=environment, settings=settings)
