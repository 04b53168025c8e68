import json

import pytest
from click.testing import CliRunner

from swiglu_check import __version__
from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref

SMALL = ["--shape", "16x128", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_run_table_and_exit_zero():
    result = invoke("run", "--limit", "7", "--dtype", "bf16", "--backend", "torch-eager", *SMALL)
    assert result.exit_code == 0, result.output
    assert "torch-eager/silu/bf16/L7/16x128/s0" in result.output
    assert "PASS" in result.output and "floor ratio" in result.output


def test_run_json_has_numbers_and_environment(tmp_path):
    out = tmp_path / "r.json"
    result = invoke("run", "--limit", "7,none", "--dtype", "bf16", "--backend", "torch-eager",
                    "--format", "json", "--output", str(out), *SMALL)
    assert result.exit_code == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "swiglu-check/report" and data["settings"]["seed"] == 0
    assert {"torch", "triton", "device_name"} <= set(data["environment"])
    assert [r["params"]["limit"] for r in data["results"]] == [7.0, None]
    assert all(0 < r["metrics"]["floor_ratio"] < 2 for r in data["results"])


def test_json_to_stdout_parses():
    result = invoke("run", "--limit", "7", "--dtype", "fp16", "--backend", "torch-eager", "--format", "json", *SMALL)
    assert json.loads(result.output)["summary"]["PASS"] == 1


@pytest.mark.parametrize("args,message", [
    (["--dtype", "fp64"], "unknown dtype"),
    (["--op", "mixtral"], "--op"),
    (["--backend", "nope"], "unknown backend"),
    (["--limit", "0"], "limit must be > 0"),
    (["--limit", "-7"], "limit must be > 0"),
    (["--limit", "nan"], "finite"),
    (["--limit", "inf"], "finite"),
    (["--shape", "16x"], "malformed shape"),
    (["--shape", "16x0"], "zero width"),
    (["--shape", "axb"], "malformed shape"),
    (["--device", "cuda:7"], "not available"),
    (["--device", "tpu"], "device"),
    (["--clamp-fraction", "0.9"], "clamp fraction"),
    (["--kind", "conv"], "unknown check kind"),
    (["--no-such-flag"], "No such option"),
])
def test_bad_input_is_one_line_and_exit_two(args, message):
    result = CliRunner().invoke(cli, ["run", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_list_shows_backends_with_availability():
    result = invoke("list")
    assert result.exit_code == 0
    assert "torch-eager" in result.output and "torch-compile" in result.output
    data = json.loads(invoke("list", "--format", "json").output)
    assert {"name", "kind", "available", "reason"} <= set(data["backends"][0])


def test_bench_without_gpu_exits_two():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(cli, ["bench"])
    assert result.exit_code == 2 and "needs a CUDA GPU" in result.stderr


def test_a_backend_that_ignores_the_clamp_exits_one(registered):
    registered(Backend("test-no-clamp", "gated",
                       lambda x, op: ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, None, op.layout))))
    result = invoke("run", "--limit", "7", "--dtype", "bf16", "--backend", "test-no-clamp,torch-eager", *SMALL)
    assert result.exit_code == 1
    assert "clamp not applied" in result.output
    rows = [line for line in result.output.splitlines() if "test-no-clamp/" in line and "│" in line]
    assert rows and all("FAIL" in line for line in rows)


def test_an_error_row_does_not_hide_other_backends(registered):
    def boom(x, op):
        raise ValueError("unsupported width")

    registered(Backend("test-raises", "gated", boom))
    result = invoke("run", "--limit", "7", "--dtype", "bf16", "--backend", "test-raises,torch-eager", *SMALL)
    assert result.exit_code == 1
    assert "ERROR" in result.output and "backend raised ValueError: unsupported width" in result.output
    assert "torch-eager/silu/bf16/L7/16x128/s0" in result.output


def test_unavailable_backend_named_explicitly_is_exit_two(registered):
    registered(Backend("test-missing", "gated", lambda x, op: x, check_available=lambda: (False, "no widget")))
    result = CliRunner().invoke(cli, ["run", "--backend", "test-missing"])
    assert result.exit_code == 2 and "no widget" in result.stderr


@pytest.mark.slow
def test_default_run_has_eager_and_compile_rows():
    """The README's first command: torch-eager about 1.2-1.3, torch-compile about 1.0."""
    result = invoke("run", "--limit", "7", "--dtype", "bf16", "--format", "json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads(result.output)["results"]}
    assert 1.1 < rows["torch-eager"]["metrics"]["floor_ratio"] < 1.5
    assert rows["torch-compile"]["metrics"]["floor_ratio"] < 1.05
