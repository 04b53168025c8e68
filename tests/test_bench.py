"""`bench` without a GPU: the same-size copy column, the --timing option, the graph
fallback, through the functions, the API and the CLI, with fake timers.

The fake timers run the real calls (on the CPU) and return a time proportional to the
number of elements the call returned, scaled per method: so a copy's time follows the
bytes it was sized to move, and a copy timed by the wrong method shows up as a wrong
number.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from swiglu_check import api, bench
from swiglu_check.cli import cli
from swiglu_check.kinds.gated import gated_bench_workloads
from swiglu_check.backends import REGISTRY
from swiglu_check.reports.bench_table import bench_json, bench_table

MS_PER_ELEMENT = {"events": 1e-6, "graph": 0.5e-6}


def _fake_timer(method: str, calls: dict):
    def timer(call, sets, **_):
        calls.setdefault(method, 0)
        calls[method] += 1
        outputs = [call(i) for i in range(sets)]
        first = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
        return [first.numel() * MS_PER_ELEMENT[method]] * 3
    return timer


@pytest.fixture
def fake_timers(monkeypatch):
    calls: dict[str, int] = {}
    monkeypatch.setitem(bench.TIMERS, "events", _fake_timer("events", calls))
    monkeypatch.setitem(bench.TIMERS, "graph", _fake_timer("graph", calls))
    return calls


def _workloads(shape=(4, 16)):
    settings = api.build_settings(op="deepseek-v4", dtypes=["bf16"], device="cpu")
    return gated_bench_workloads(REGISTRY.get("torch-eager"), settings, [shape])


def test_same_size_copy_cache_times_each_bytes_and_method_once() -> None:
    seen = []

    def timer(nbytes, method):
        seen.append((nbytes, method))
        return nbytes, 0.001 * len(seen)

    copies = bench.SameSizeCopies(timer)
    assert copies.get(1000, "events") == (1000, 0.001)
    assert copies.get(1000, "events") == (1000, 0.001)  # cached, not re-timed
    assert copies.get(1000, "graph") == (1000, 0.002)
    assert copies.get(2000, "events") == (2000, 0.003)
    assert seen == [(1000, "events"), (1000, "graph"), (2000, "events")] and len(copies) == 3


def test_pct_of_same_size_copy() -> None:
    # the workload moves 600 bytes in 2 ms; the copy 600 bytes in 1 ms: half its bandwidth
    assert bench.pct_of_same_size_copy(600, 2.0, 600, 1.0) == pytest.approx(50.0)
    # a copy rounded down to 596 bytes is compared by bandwidth, not by time
    assert bench.pct_of_same_size_copy(600, 1.0, 596, 1.0) == pytest.approx(100.0 * 600 / 596)
    assert math.isnan(bench.pct_of_same_size_copy(600, 0.0, 600, 1.0))


def test_time_copy_moves_the_asked_bytes_rotated(fake_timers) -> None:
    moved, ms = bench.time_copy(6 * 4 * 16, "cpu", "graph")
    assert moved == 384 and ms == pytest.approx(96 * MS_PER_ELEMENT["graph"])
    assert fake_timers == {"graph": 1}
    assert bench.rotation_sets(192, limit=bench.COPY_MAX_SETS) == bench.COPY_MAX_SETS


@pytest.mark.parametrize("method", bench.TIMING_METHODS)
def test_measure_adds_the_same_size_copy_timed_by_the_same_method(fake_timers, method) -> None:
    workloads = _workloads() + _workloads((8, 16))
    timings = bench.measure(workloads, copy_bytes_per_s=1e9, method=method, device="cpu")
    assert [t.error for t in timings] == ["", ""]
    for t, w in zip(timings, workloads):
        tokens, width = t.params["shape"]
        assert t.method == method and not t.note
        # the gated call returns T*D elements; the copy of 6*T*D bytes moves 1.5*T*D bf16 elements
        assert t.median_us == pytest.approx(tokens * width * MS_PER_ELEMENT[method] * 1e3)
        assert t.same_size_copy_us == pytest.approx(1.5 * tokens * width * MS_PER_ELEMENT[method] * 1e3)
        assert t.pct_same_size_copy == pytest.approx(150.0)
        assert t.pct_copy == pytest.approx(100.0 * w.bytes_moved / (t.median_us * 1e-6) / 1e9)
    # one copy per distinct workload size, plus one timing per workload
    assert fake_timers == {method: 4}


def test_graph_capture_failure_falls_back_to_events_and_says_so(fake_timers, monkeypatch) -> None:
    def cannot_capture(call, sets, **_):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setitem(bench.TIMERS, "graph", cannot_capture)
    workloads = _workloads()
    copies = bench.SameSizeCopies(lambda nbytes, method: (nbytes, {"events": 1.0, "graph": 99.0}[method]))
    [t] = bench.measure(workloads, 1e9, method="graph", copies=copies)
    assert not t.error and t.method == "events"
    assert t.note.startswith("events: graph capture failed (RuntimeError: operation not permitted")
    assert t.same_size_copy_us == pytest.approx(1000.0)  # the copy is timed like the row: by events
    assert "events: graph capture failed" in _render(bench_table([t], 3000.0, "test device", "graph"))


def test_a_graph_only_workload_keeps_graph_in_an_events_run(fake_timers) -> None:
    [w] = _workloads()
    w.graph = True
    [t] = bench.measure([w], 1e9, method="events", device="cpu")
    assert t.method == "graph" and fake_timers == {"graph": 2}
    assert "timed by graph" in _render(bench_table([t], 3000.0, "test device", "events"))


def test_measure_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown timing method"):
        bench.measure([], 1e9, method="wallclock")


def _render(table) -> str:
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_table_and_json_carry_both_copy_columns(fake_timers) -> None:
    timings = bench.measure(_workloads(), 1e9, method="graph", device="cpu")
    text = _render(bench_table(timings, 3000.0, "test device", "graph"))
    assert "timing: graph" in text and "% copy" in text and "% same-size copy" in text
    assert "150.0" in text
    data = json.loads(bench_json(timings, 3000.0, {}, "graph"))
    assert data["timing"] == "graph"
    row = data["timings"][0]
    assert row["pct_same_size_copy"] == pytest.approx(150.0) and row["method"] == "graph"
    assert "pct_copy" in row and row["same_size_copy_us"] > 0


@pytest.fixture
def cpu_bench(monkeypatch, fake_timers):
    """`bench` through the CLI on the CPU: no CUDA check, a fixed large-copy bandwidth."""
    copies = []
    monkeypatch.setattr(bench, "require_cuda", lambda settings: None)

    def copy_bandwidth(device):
        copies.append(device)
        return 2e9

    monkeypatch.setattr(bench, "copy_bandwidth", copy_bandwidth)
    return copies


@pytest.mark.parametrize("method", bench.TIMING_METHODS)
def test_cli_timing_option_reaches_rows_json_and_table(cpu_bench, method) -> None:
    args = ["bench", "--backend", "torch-eager", "--shape", "4x16", "--op", "deepseek-v4", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--timing", method, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["timing"] == method and data["copy_gb_per_s"] == pytest.approx(2.0)
    [row] = data["timings"]
    assert row["method"] == method and row["pct_same_size_copy"] == pytest.approx(150.0)
    assert row["pct_copy"] == pytest.approx(100.0 * 384 / (64 * MS_PER_ELEMENT[method] * 1e-3) / 2e9)
    table = CliRunner().invoke(cli, [*args, "--timing", method])
    assert table.exit_code == 0 and f"timing: {method}" in table.stdout and "% same-size copy" in table.stdout
    assert cpu_bench == ["cpu", "cpu"]  # one large-copy reference per bench, whatever the method


def test_cli_timing_defaults_to_events(cpu_bench) -> None:
    result = CliRunner().invoke(cli, ["bench", "--backend", "torch-eager", "--shape", "4x16", "--device", "cpu",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["timing"] == "events" and cpu_bench == ["cpu"]


def test_the_large_copy_reference_is_timed_by_events_for_every_method(monkeypatch) -> None:
    """Graph replays of the 1 GiB copy ran 19% slower on the H100 than per-call events, so
    the reference bandwidth is always taken by events (a launch cost is nothing at 1 GiB)."""
    calls = []

    def time_copy(nbytes, device, method="events"):
        calls.append(method)
        return 1000, 1e-3

    monkeypatch.setattr(bench, "time_copy", time_copy)
    assert bench.copy_bandwidth("cpu") == pytest.approx(1e9)
    assert calls == ["events"]


def test_cli_rejects_a_bad_timing_with_exit_two() -> None:
    result = CliRunner().invoke(cli, ["bench", "--timing", "wallclock"])
    assert result.exit_code == 2
    assert "Invalid value for '--timing'" in result.stderr and "Traceback" not in result.output


def test_cli_bench_graph_without_a_gpu_exits_two() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(cli, ["bench", "--timing", "graph"])
    assert result.exit_code == 2 and "needs a CUDA GPU" in result.stderr
