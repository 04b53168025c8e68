import json

import pytest
from click.testing import CliRunner

from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref

ARGS = ["--shape", "16x128", "--shape", "5x411", "--dtype", "bf16,fp16", "--limit", "7", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def kernels(registered):
    """One name, three behaviours: fused (good), round-act (worse, still passing), unclamped."""
    state = {"impl": ref.fused}
    registered(Backend("test-kernel", "gated", lambda x, op: state["impl"](x, op)))
    return state


def test_round_trip_passes_and_a_worse_kernel_regresses(tmp_path, kernels):
    base = tmp_path / "base.json"
    first = invoke("run", "--backend", "test-kernel", *ARGS, "--save-baseline", str(base))
    assert first.exit_code == 0 and base.exists()
    data = json.loads(base.read_text())
    assert data["schema"] == "swiglu-check/baseline" and data["version"] == 1 and len(data["cases"]) == 4

    same = invoke("run", "--backend", "test-kernel", *ARGS, "--baseline", str(base))
    assert same.exit_code == 0, same.output
    assert "0 regressed" in same.output

    # an extra rounding: still PASS on its own (ratio ~1.2-1.3) but a regression vs 1.0
    kernels["impl"] = lambda x, op: ref.eager(x, op)
    worse = invoke("run", "--backend", "test-kernel", *ARGS, "--baseline", str(base))
    assert worse.exit_code == 1
    assert "regressed" in worse.output and "test-kernel/silu/bf16/L7/16x128/s0" in worse.output

    kernels["impl"] = lambda x, op: ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, None, op.layout))
    broken = invoke("run", "--backend", "test-kernel", *ARGS, "--baseline", str(base), "--format", "json")
    assert broken.exit_code == 1 and "verdict PASS -> FAIL" in broken.output


def test_compare_reports_missing_new_and_regressed(tmp_path, kernels):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    invoke("run", "--backend", "test-kernel", *ARGS, "--format", "json", "--output", str(old))
    kernels["impl"] = lambda x, op: ref.eager(x, op)
    invoke("run", "--backend", "test-kernel", "--shape", "16x128", "--shape", "9x233", "--dtype", "bf16,fp16",
           "--limit", "7", "--device", "cpu", "--format", "json", "--output", str(new))
    result = invoke("compare", str(old), str(new), "--format", "json")
    assert result.exit_code == 1
    statuses = {c["case_id"].split("/", 4)[-1]: c["status"] for c in json.loads(result.output)["changes"]}
    assert statuses["16x128/s0"] == "regressed"
    assert statuses["5x411/s0"] == "missing"
    assert statuses["9x233/s0"] == "new"
    lenient = invoke("compare", str(old), str(old))
    assert lenient.exit_code == 0


def test_a_large_factor_tolerates_the_extra_rounding(tmp_path, kernels):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    invoke("run", "--backend", "test-kernel", *ARGS, "--save-baseline", str(old))
    kernels["impl"] = lambda x, op: ref.eager(x, op)
    invoke("run", "--backend", "test-kernel", *ARGS, "--save-baseline", str(new))
    assert invoke("compare", str(old), str(new)).exit_code == 1
    assert invoke("compare", str(old), str(new), "--regression-factor", "2").exit_code == 0


@pytest.mark.parametrize("content,message", [
    ("not json", "is not JSON"),
    ('{"hello": 1}', "is not a swiglu-check baseline"),
    ('{"schema": "swiglu-check/baseline", "version": 0, "cases": {}}', "unsupported"),
    ('{"schema": "swiglu-check/baseline", "version": 99, "cases": {}}', "newer swiglu-check"),
    ('{"schema": "swiglu-check/baseline", "version": 1, "cases": {"a": {}}}', "malformed baseline entry"),
])
def test_foreign_or_old_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "b.json"
    path.write_text(content)
    result = invoke("compare", str(path), str(path))
    assert result.exit_code == 2 and message in result.stderr
    run = invoke("run", "--baseline", str(path), "--device", "cpu")
    assert run.exit_code == 2 and message in run.stderr
