"""The user's own backends: module:attr specs, entry points, and their errors."""

import sys
import textwrap

import pytest
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.backends import REGISTRY
from swiglu_check.cli import cli
from swiglu_check.errors import InputError
from swiglu_check.results import FAIL, PASS

PLUGIN = textwrap.dedent('''
    import torch
    from swiglu_check.backends import Backend

    def good(x, *, limit):
        """fp32 math, one rounding (halves)."""
        d = x.shape[-1] // 2
        g, u = x[:, :d].float(), x[:, d:].float()
        if limit is not None:
            g, u = g.clamp(max=limit), u.clamp(-limit, limit)
        return (g * torch.sigmoid(g) * u).to(x.dtype)

    def unclamped(x, *, limit):
        return good(x, limit=None)

    def with_op_fields(x, *, limit, alpha, beta, layout):
        assert layout == "halves"
        d = x.shape[-1] // 2
        g, u = x[:, :d].float(), x[:, d:].float()
        if limit is not None:
            g, u = g.clamp(max=limit), u.clamp(-limit, limit)
        return (g * torch.sigmoid(alpha * g) * (u + beta)).to(x.dtype)

    def no_limit(x):
        return x

    def needs_more(x, *, limit, stream):
        return x

    NOT_CALLABLE = 3

    def factory():
        return Backend("factory-made", "gated", lambda x, op: good(x, limit=op.limit))
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "sc_test_plugin.py").write_text(PLUGIN)
    (tmp_path / "sc_broken_plugin.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "sc_test_plugin"
    for name in [n for n in REGISTRY.names() if n.startswith("sc_test_plugin") or n == "factory-made"]:
        REGISTRY.unregister(name)
    sys.modules.pop("sc_test_plugin", None)


def small(**kw):
    return dict(shapes=["16x128"], dtypes="bf16", limits="7", device="cpu", **kw)


def test_function_plugin_passes_and_wrong_one_fails(plugin_module):
    report = api.check([f"{plugin_module}:good", f"{plugin_module}:unclamped"], **small())
    verdicts = {r.backend: r.verdict for r in report.results}
    assert verdicts == {f"{plugin_module}:good": PASS, f"{plugin_module}:unclamped": FAIL}


def test_op_fields_are_passed_when_asked_for(plugin_module):
    report = api.check(f"{plugin_module}:with_op_fields", **small(op="gpt-oss", layout="halves"))
    assert report.passed


def test_factory_returning_a_backend(plugin_module):
    report = api.check(f"{plugin_module}:factory", **small())
    assert [r.backend for r in report.results] == ["factory-made"] and report.passed


@pytest.mark.parametrize("spec,message", [
    ("sc_test_plugin:missing", "has no attribute 'missing'"),
    ("sc_broken_plugin:fn", "cannot import module 'sc_broken_plugin'"),
    ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
    ("sc_test_plugin:no_limit", "has no 'limit' keyword"),
    ("sc_test_plugin:needs_more", "requires argument(s) stream"),
    ("sc_test_plugin:NOT_CALLABLE", "is not a backend"),
    ("sc_test_plugin:", "malformed backend"),
])
def test_plugin_errors_are_one_line_exit_two(plugin_module, spec, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        api.resolve_backends([spec])
    result = CliRunner().invoke(cli, ["run", "--backend", spec, "--device", "cpu"])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_runs_a_plugin(plugin_module):
    result = CliRunner().invoke(cli, ["run", "--backend", f"{plugin_module}:unclamped", "--shape", "16x128",
                                      "--dtype", "bf16", "--limit", "7", "--device", "cpu"])
    assert result.exit_code == 1 and "clamp not applied" in result.output


def test_entry_point_backend_is_registered_and_runs(tmp_path, monkeypatch, plugin_module):
    dist = tmp_path / "sc_test_plugin_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sc-test-plugin-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[swiglu_check.backends]\nep-good = sc_test_plugin:good\nep-broken = sc_broken_plugin:fn\n")
    REGISTRY.load_entry_points()
    try:
        assert "ep-good" in REGISTRY.names()
        assert any("ep-broken" in source for source in REGISTRY.load_errors)
        result = CliRunner().invoke(cli, ["run", "--backend", "ep-good", "--shape", "16x128", "--dtype", "bf16",
                                          "--limit", "7", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        listing = CliRunner().invoke(cli, ["list"])
        assert "ep-good" in listing.output and "could not load entry point ep-broken" in listing.output
    finally:
        REGISTRY.unregister("ep-good")
