import json

import pytest
from click.testing import CliRunner

from swiglu_check.cli import cli
from swiglu_check.config import find_config, load_config
from swiglu_check.errors import InputError

PYPROJECT = """
[project]
name = "someone-elses-kernels"

[tool.swiglu-check]
op = "gpt-oss"
dtypes = ["bf16"]
shapes = "16x128"
backends = "torch-eager"
device = "cpu"

[tool.swiglu-check.thresholds]
max_floor_ratio = 1.05
regression_factor = 1.5

[tool.swiglu-check.thresholds.gated]
fp16 = 1.9
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_config_is_found_from_a_subdirectory_and_shows_sources(project):
    assert find_config() == project / "pyproject.toml"
    result = run("config", "--limit", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)["settings"]
    assert settings["op"] == {"value": "gpt-oss", "source": "pyproject.toml [tool.swiglu-check]"}
    assert settings["limits"] == {"value": ["5"], "source": "command line"}
    assert settings["seed"]["source"] == "default"
    assert settings["thresholds.gated.fp16"]["value"] == 1.9


def test_file_thresholds_apply_and_cli_overrides_them(project):
    # eager bf16 sits near 1.2: the file's 1.05 fails it, the CLI's 2.0 passes it
    assert run("run").exit_code == 1
    assert run("run", "--max-floor-ratio", "2").exit_code == 0


def test_per_kind_dtype_limit(project):
    result = run("run", "--dtype", "fp16", "--format", "json")
    assert result.exit_code == 0, result.output  # fp16 eager ~1.35 < the file's 1.9 for gated/fp16


def test_swiglu_check_toml_wins_in_its_directory(project):
    (project / "src" / "deep" / "swiglu-check.toml").write_text('op = "llama"\n')
    config = load_config()
    assert config.path.name == "swiglu-check.toml" and config.values == {"op": "llama"}


@pytest.mark.parametrize("text,message", [
    ('[tool.swiglu-check]\nmax_floor = 3\n', "unknown key 'max_floor'"),
    ('[tool.swiglu-check.thresholds]\nmax_floor_ratio = -1\n', "must be a positive number"),
    ('[tool.swiglu-check.thresholds.gated]\nfp64 = 2\n', "unknown key 'fp64'"),
    ('[tool.swiglu-check.thresholds.conv]\nbf16 = 2\n', "unknown threshold 'conv'"),
    ('[tool.swiglu-check\n', "not valid TOML"),
])
def test_bad_configuration_is_one_line_exit_two(tmp_path, monkeypatch, text, message):
    (tmp_path / "pyproject.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    if "not valid" in message:
        with pytest.raises(InputError):
            load_config(tmp_path / "pyproject.toml")
    result = run("--config", str(tmp_path / "pyproject.toml"), "run", "--device", "cpu")
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_missing_explicit_config_file(tmp_path):
    result = run("--config", str(tmp_path / "nope.toml"), "run")
    assert result.exit_code == 2 and "does not exist" in result.stderr
