"""The examples run as their text says."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def swiglu_check_command() -> str:
    return str(Path(sys.executable).with_name("swiglu-check"))


def test_api_example_runs():
    out = subprocess.run([sys.executable, str(EXAMPLES / "check_api.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("PASS") == 6


def test_pytest_example_passes():
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_with_helper.py"],
                         cwd=EXAMPLES, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_is_valid_and_its_check_command_runs(tmp_path):
    workflow = yaml.safe_load((EXAMPLES / "ci" / "swiglu-check.yml").read_text())
    steps = workflow["jobs"]["numerics"]["steps"]
    check = next(step for step in steps if step.get("run", "").lstrip().startswith("swiglu-check run"))
    command = " ".join(check["run"].split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert command in readme, "the README must document the workflow's command"

    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(["bash", "-c", f"cd {tmp_path} && cp -r {EXAMPLES}/. . && {command}"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    suites = ET.parse(tmp_path / "reports" / "swiglu-check.xml").getroot()
    assert suites.get("tests") == "12" and suites.get("failures") == "0"
    assert "PASS" in summary.read_text() or "pass" in summary.read_text().lower()
