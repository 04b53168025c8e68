"""A validation tool must never lose a result: isolation, crash-safe journals, shards."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.results import ERROR, FAIL, PASS
from tests.support import crash_backends

TESTS_ROOT = str(Path(__file__).resolve().parent.parent)
SMALL = ["--dtype", "bf16", "--limit", "7", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def numbers(report_json: dict) -> list:
    """Results without timings, for comparing runs."""
    return sorted((dict(r, seconds=0, details="") for r in report_json["results"]), key=lambda r: r["case_id"])


def test_a_self_killing_backend_under_isolate_leaves_other_rows_intact(monkeypatch):
    monkeypatch.syspath_prepend(TESTS_ROOT)
    result = invoke("run", "--backend", "tests.support.crash_backends:kills_itself,torch-eager,"
                    "tests.support.crash_backends:aborts_on_wide", "--isolate", *SMALL,
                    "--shape", "16x128", "--shape", "8x400", "--format", "json")
    assert result.exit_code == 1
    rows = {r["case_id"]: r for r in json.loads(result.output)["results"]}
    killed = [r for r in rows.values() if r["backend"].endswith("kills_itself")]
    assert [r["verdict"] for r in killed] == [ERROR, ERROR]
    assert "SIGKILL" in killed[0]["reasons"][0] and "not run" in killed[1]["reasons"][0]
    aborted = {r["params"]["shape"][1]: r for r in rows.values() if r["backend"].endswith("aborts_on_wide")}
    assert aborted[128]["verdict"] == PASS
    assert aborted[400]["verdict"] == ERROR and "SIGABRT" in aborted[400]["reasons"][0]
    assert all(r["verdict"] == PASS for r in rows.values() if r["backend"] == "torch-eager")


def test_timeout_kills_a_hanging_case_and_the_backend_goes_on(monkeypatch):
    monkeypatch.syspath_prepend(TESTS_ROOT)
    start = time.monotonic()
    result = invoke("run", "--backend", "tests.support.crash_backends:hangs_on_wide", "--timeout", "6", *SMALL,
                    "--shape", "8x400", "--shape", "16x128", "--format", "json")
    assert time.monotonic() - start < 100
    rows = {r["params"]["shape"][1]: r for r in json.loads(result.output)["results"]}
    assert rows[400]["verdict"] == ERROR and "timed out after 6 s" in rows[400]["reasons"][0]
    assert rows[128]["verdict"] == PASS  # ran in a fresh child after the kill


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--backend", "tests.support.crash_backends:slow_fused", "--dtype", "bf16,fp16", "--limit", "7,10",
            "--shape", "16x128", "--shape", "4x600", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=TESTS_ROOT, SC_TEST_SLEEP="0.4")
    command = [sys.executable, "-m", "swiglu_check", "run", *args]
    journal = tmp_path / "results.jsonl"
    victim = subprocess.Popen([*command, "--results", str(journal)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"type": "result"') >= 3:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = journal.read_text().count('"type": "result"')
    assert 3 <= done_before < 8, "the run should have been killed part-way"

    env["SC_TEST_SLEEP"] = "0"
    resumed = subprocess.run([*command, "--results", str(journal), "--resume", "--format", "json"],
                             env=env, capture_output=True, text=True)
    clean = subprocess.run([*command, "--format", "json"], env=env, capture_output=True, text=True)
    assert resumed.returncode == clean.returncode == 0, resumed.stderr
    assert numbers(json.loads(resumed.stdout)) == numbers(json.loads(clean.stdout))
    assert journal.read_text().count('"type": "result"') == 8  # finished cases were not run twice

    rebuilt = subprocess.run([sys.executable, "-m", "swiglu_check", "report", str(journal), "--format", "json"],
                             env=env, capture_output=True, text=True)
    assert numbers(json.loads(rebuilt.stdout)) == numbers(json.loads(clean.stdout))


def test_resume_refuses_a_file_from_other_settings(tmp_path):
    journal = tmp_path / "r.jsonl"
    assert invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "16x128", "--results", str(journal)).exit_code == 0
    again = invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "16x128", "--results", str(journal))
    assert again.exit_code == 2 and "--resume" in again.stderr
    other = invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "32x128", "--results", str(journal), "--resume")
    assert other.exit_code == 2 and "other settings" in other.stderr


def test_torn_last_line_is_ignored(tmp_path):
    journal = tmp_path / "r.jsonl"
    invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "16x128", "--shape", "4x600", "--results", str(journal))
    text = journal.read_text().splitlines()
    journal.write_text("\n".join(text[:-1]) + "\n" + text[-1][: len(text[-1]) // 2])  # killed mid-write
    resumed = invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "16x128", "--shape", "4x600",
                     "--results", str(journal), "--resume", "--format", "json")
    assert resumed.exit_code == 0
    assert len(json.loads(resumed.output)["results"]) == 2


def test_shards_partition_the_run_and_merge_to_the_unsharded_report(tmp_path):
    args = ["--backend", "torch-eager", "--dtype", "bf16,fp16,fp32", "--limit", "7,none",
            "--shape", "16x128", "--shape", "3x700", "--device", "cpu"]
    full = json.loads(invoke("run", *args, "--format", "json").output)
    paths = []
    for i in (1, 2, 3):
        path = tmp_path / f"shard{i}.jsonl"
        invoke("run", *args, "--shard", f"{i}/3", "--results", str(path))
        paths.append(str(path))
    sizes = [Path(p).read_text().count('"type": "result"') for p in paths]
    assert sum(sizes) == len(full["results"]) == 12 and all(sizes)
    merged = invoke("merge", *paths, "--format", "json")
    assert merged.exit_code == 0
    assert numbers(json.loads(merged.output)) == numbers(full)
    twice = invoke("merge", paths[0], paths[0])
    assert twice.exit_code == 2 and "more than one input" in twice.stderr


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1/0", "a/b", "2"])
def test_bad_shard(bad):
    result = invoke("run", "--shard", bad, "--device", "cpu")
    assert result.exit_code == 2 and "shard" in result.stderr


def test_devices_fan_out_and_merge(monkeypatch):
    monkeypatch.syspath_prepend(TESTS_ROOT)
    args = ["--backend", "torch-eager", "--dtype", "bf16,fp16", "--limit", "7", "--shape", "16x128", "--shape", "3x700"]
    full = json.loads(invoke("run", *args, "--device", "cpu", "--format", "json").output)
    spread = invoke("run", *args, "--devices", "cpu,cpu", "--format", "json")
    assert spread.exit_code == 0, spread.output
    assert numbers(json.loads(spread.output)) == numbers(full)


def test_max_memory_errors_before_allocating():
    result = invoke("run", "--backend", "torch-eager", *SMALL, "--shape", "16x128", "--shape", "1000000x8192",
                    "--max-memory", "1G", "--format", "json")
    rows = {r["params"]["shape"][0]: r for r in json.loads(result.output)["results"]}
    assert rows[16]["verdict"] == PASS
    assert rows[1000000]["verdict"] == ERROR and "--max-memory" in rows[1000000]["reasons"][0]
    assert invoke("run", "--max-memory", "lots", "--device", "cpu").exit_code == 2


def test_out_variant_that_skips_elements_fails_as_unwritten():
    half = Backend("half", "gated", call=lambda x, op: None, call_out=crash_backends.writes_half)
    full = Backend("full", "gated", call=lambda x, op: None, call_out=crash_backends.writes_all)
    report = api.check([half, full], shapes=["16x128"], dtypes="bf16,fp16,fp32", limits="7", device="cpu")
    for r in report.results:
        if r.backend == "half":
            assert r.verdict == FAIL and "1024 output element(s) never written" in r.reasons[0]
        else:
            assert r.verdict == PASS and r.metrics["unwritten"] == 0


def test_special_inputs_expose_a_nan_hiding_clamp():
    import torch

    def fminf_clamp(x, op):
        d = x.shape[-1] // 2
        g, u = x[:, :d].float(), x[:, d:].float()
        limit = torch.full_like(g, op.limit)
        g = torch.where(torch.isnan(g), limit, torch.minimum(g, limit))  # fminf(NaN, L) == L
        u = torch.where(torch.isnan(u), limit, u.clamp(-op.limit, op.limit))
        return (g * torch.sigmoid(g) * u).to(x.dtype)

    report = api.check([Backend("fminf", "gated", fminf_clamp), "torch-eager"], shapes=["32x64"],
                       dtypes="bf16", limits="7", device="cpu", input_sets="special,gaussian")
    by = {(r.backend, r.params["distribution"]): r for r in report.results}
    assert by[("fminf", "special")].verdict == FAIL and "hides NaN" in by[("fminf", "special")].reasons[0]
    assert by[("fminf", "gaussian")].verdict == PASS  # Gaussian inputs cannot see it
    assert by[("torch-eager", "special")].verdict == PASS


@pytest.mark.parametrize("sets", ["boundary", "heavy-tail", "special", "gelu-tail"])
def test_correct_backends_pass_every_input_set(sets):
    report = api.check(["torch-eager"], shapes=["16x128"], dtypes="bf16,fp16,fp32", limits="7,none",
                       device="cpu", input_sets=sets)
    assert report.passed, [(r.case_id, r.reasons) for r in report.failures()]
