"""JUnit, Markdown and CSV reports, and several report files from one CLI run.

The reports are built from real results: the torch-eager backend and deliberately wrong
backends run through `api.check` on tiny shapes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from click.testing import CliRunner

from swiglu_check import api
from swiglu_check.backends import Backend
from swiglu_check.cli import cli
from swiglu_check.ops import OpSpec
from swiglu_check.references import gated as ref
from swiglu_check.reports import RENDERERS, render
from swiglu_check.reports.csv_report import LEADING
from swiglu_check.reports.markdown import render_markdown
from swiglu_check.results import ERROR, FAIL, INCONCLUSIVE, PASS, SKIP, Report

NASTY = 'kernel said "a | b" <tag> & \u00fcml\u00e4ut \u2264 7\x01'


def ignores_clamp(x, op):
    return ref.fused(x, OpSpec(op.activation, op.alpha, op.beta, None, op.layout))


def raises_nasty(x, op):
    raise RuntimeError(NASTY)


def wrong_backends() -> list[Backend]:
    return [
        Backend(name="no-clamp", kind="gated", call=ignores_clamp),
        Backend(name="nasty", kind="gated", call=raises_nasty),
        Backend(name="bf16-only", kind="gated", call=ref.fused, dtypes=("bf16",)),
    ]


@pytest.fixture(scope="module")
def report() -> Report:
    """Every verdict at least once: PASS, FAIL, ERROR, SKIP, and INCONCLUSIVE (inputs
    scaled so that they never reach the clamp)."""
    main = api.check(["torch-eager", *wrong_backends()], dtypes="bf16,fp16", limits="7",
                     shapes=["32x64"], device="cpu")
    weak = api.check(["torch-eager"], dtypes="bf16", limits="7", shapes=["32x64"], device="cpu", scale=0.5)
    combined = Report(main.results + weak.results, main.environment, main.settings)
    assert {r.verdict for r in combined.results} == {PASS, FAIL, ERROR, SKIP, INCONCLUSIVE}
    return combined


def test_new_formats_are_registered():
    assert {"junit", "markdown", "csv"} <= set(RENDERERS)


# --- JUnit ------------------------------------------------------------------------


def test_junit_parses_and_counts_match_the_verdicts(report):
    text = render(report, "junit")
    assert text.isascii()
    root = ET.fromstring(text.encode("utf-8"))
    counts = report.counts()
    assert root.tag == "testsuites"
    assert int(root.get("tests")) == len(report.results)
    assert int(root.get("failures")) == counts[FAIL] + counts[INCONCLUSIVE]
    assert int(root.get("errors")) == counts[ERROR]
    assert int(root.get("skipped")) == counts[SKIP]

    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == list(dict.fromkeys(r.backend for r in report.results))
    assert len(suites) == 4
    for suite in suites:
        mine = [r for r in report.results if r.backend == suite.get("name")]
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == [r.case_id for r in mine]
        assert {c.get("classname") for c in cases} == {f"swiglu-check.{suite.get('name')}"}
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
        assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))
        for case, result in zip(cases, mine):
            assert float(case.get("time")) == pytest.approx(result.seconds, abs=1e-6)
    assert len(root.findall(".//failure")) == counts[FAIL] + counts[INCONCLUSIVE]
    assert len(root.findall(".//error")) == counts[ERROR]
    assert len(root.findall(".//skipped")) == counts[SKIP]


def test_junit_failure_carries_reasons_and_numbers(report):
    root = ET.fromstring(render(report, "junit"))
    by_name = {c.get("name"): c for c in root.iter("testcase")}
    no_clamp = [r for r in report.results if r.backend == "no-clamp" and r.verdict == FAIL]
    assert no_clamp
    for result in no_clamp:
        failure = by_name[result.case_id].find("failure")
        assert failure.get("type") == FAIL
        assert failure.get("message") == "; ".join(result.reasons)
        assert "clamp not applied" in failure.text  # GitLab shows only the text
        assert f"floor_ratio = {result.metrics['floor_ratio']!r}" in failure.text
        assert result.metrics["floor_ratio"] > 100
    inconclusive = next(r for r in report.results if r.verdict == INCONCLUSIVE)
    assert by_name[inconclusive.case_id].find("failure").get("type") == INCONCLUSIVE
    skipped = next(r for r in report.results if r.verdict == SKIP)
    assert by_name[skipped.case_id].find("skipped").get("message") == skipped.reasons[0]
    passing = next(r for r in report.results if r.verdict == PASS)
    assert "floor_ratio = " in by_name[passing.case_id].find("system-out").text


def test_junit_escapes_markup_quotes_non_ascii_and_control_characters(report):
    root = ET.fromstring(render(report, "junit"))
    errors = [c.find("error") for c in root.iter("testcase") if c.find("error") is not None]
    assert errors
    for error in errors:
        expected = "backend raised RuntimeError: " + NASTY.replace("\x01", "\\x01")
        assert error.get("message") == expected
        assert expected in error.text and "Traceback" in error.text


def test_junit_properties_hold_the_environment(report):
    root = ET.fromstring(render(report, "junit"))
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").iter("property")}
    assert props["torch"] == report.environment["torch"]
    assert props["device"] == "cpu"
    assert "triton" in props
    assert json.loads(props["settings"])["dtypes"] == ["bf16", "fp16"]


# --- Markdown ---------------------------------------------------------------------

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def table_cells(line: str) -> list[str]:
    return [c.strip() for c in UNESCAPED_PIPE.split(line)[1:-1]]


def test_markdown_summary_line_then_a_row_per_failing_case(report):
    text = render(report, "markdown")
    first = text.splitlines()[0]
    failing = report.failures()
    assert first.startswith("## \u274c swiglu-check:")
    assert f"{len(failing)} of {len(report.results)} cases did not pass" in first
    assert "1 INCONCLUSIVE" in first and "1 SKIP" in first

    section = text.split("### Not passing", 1)[1].split("###", 1)[0]
    rows = [table_cells(line) for line in section.splitlines() if line.startswith("| **")]
    assert len(rows) == len(failing)
    for cells, result in zip(rows, failing):
        assert len(cells) == 3
        assert cells[0] == f"**{result.verdict}**"
        assert cells[1] == f"`{result.case_id}`"


def test_markdown_escapes_a_pipe_in_a_reason(report):
    text = render(report, "markdown")
    lines = [line for line in text.splitlines() if "kernel said" in line and line.startswith("| **ERROR**")]
    assert lines
    for line in lines:
        cells = table_cells(line)
        assert len(cells) == 3  # the | inside the reason did not split the row
        assert '"a \\| b"' in cells[2]
        assert "&lt;tag&gt; &amp;" in cells[2] and "<tag>" not in line


def test_markdown_tables_per_backend_use_the_kinds_columns(report):
    text = render(report, "markdown")
    assert "### torch-eager (gated)" in text
    header = next(line for line in text.splitlines() if line.startswith("| dtype |"))
    assert "floor ratio" in header and "clamp cov." in header
    assert text.rstrip().endswith("</details>") and "- torch: " in text


def test_markdown_folds_passing_rows_of_large_runs_and_stays_under_a_size_limit():
    big = api.check(["torch-eager", Backend(name="no-clamp", kind="gated", call=ignores_clamp)],
                    dtypes="bf16", limits="7,none", shapes=[f"{t}x64" for t in range(40, 51)], device="cpu")
    eager = [r for r in big.results if r.backend == "torch-eager"]
    assert len(eager) == 22 and all(r.verdict == PASS for r in eager)
    text = render_markdown(big)
    folded = text.split("### torch-eager", 1)[1].split("###", 1)[0]
    assert "<details>" in folded and "22 passing or skipped cases" in folded
    assert all(r.case_id in folded.split("<details>", 1)[1] for r in eager)
    short = render_markdown(big, limit_bytes=len(text.encode()) - 1)
    assert "left out to stay under GitHub's summary limit" in short
    assert not any(r.case_id in short for r in eager)
    assert all(r.case_id in short for r in big.failures())


def test_markdown_all_passing_gets_a_check_mark():
    good = api.check(["torch-eager"], dtypes="bf16", limits="7", shapes=["32x64"], device="cpu")
    assert render(good, "markdown").startswith("## \u2705 swiglu-check: every case that ran passed (1 PASS)")


# --- CSV --------------------------------------------------------------------------


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def same_number(text: str, value) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return math.isnan(float(text))
    return type(value)(text) == value


def test_csv_reads_back_ids_verdicts_and_exact_metrics(report):
    text = render(report, "csv")
    rows = read_csv(text)
    assert [r["case_id"] for r in rows] == [r.case_id for r in report.results]
    assert [r["verdict"] for r in rows] == [r.verdict for r in report.results]
    header = next(csv.reader(io.StringIO(text)))
    assert tuple(header[:4]) == LEADING
    assert header[-4:] == ["reasons", "warnings", "interpreted", "seconds"]
    checked = 0
    for row, result in zip(rows, report.results):
        assert row["reasons"].split("\n") == result.reasons or (row["reasons"] == "" and not result.reasons)
        assert row["params.dtype"] == result.params["dtype"]
        assert json.loads(row["params.shape"]) == result.params["shape"]
        for key, value in result.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert same_number(row[f"metrics.{key}"], value), (key, row[f"metrics.{key}"], value)
                checked += 1
        if not result.metrics:  # ERROR/SKIP rows leave the metric columns empty
            assert row["metrics.floor_ratio"] == ""
    assert checked > 50


def test_csv_keeps_the_nasty_reason_exactly(report):
    rows = read_csv(render(report, "csv"))
    nasty = [r for r in rows if r["backend"] == "nasty"]
    assert nasty and all(r["reasons"] == "backend raised RuntimeError: " + NASTY for r in nasty)


def test_a_kind_this_version_does_not_know_renders_in_every_format(report):
    base = next(r for r in report.results if r.verdict == FAIL)
    other = replace(base, case_id="w4/linear/bf16/16x32x64", backend="w4", kind="linear-w4a16",
                    params={"dtype": "bf16", "weight_format": "nvfp4", "group": 16},
                    metrics={"rel_l2": 0.25, "dequant_floor": 1e-3, "floor_ratio": 250.0})
    mixed = Report(report.results + [other], report.environment, report.settings)
    rows = read_csv(render(mixed, "csv"))
    assert rows[-1]["params.weight_format"] == "nvfp4" and rows[-1]["metrics.dequant_floor"] == "0.001"
    assert rows[0]["params.weight_format"] == "" and rows[0]["params.limit"] == "7.0"
    root = ET.fromstring(render(mixed, "junit"))
    assert root.find("testsuite[@name='w4']/testcase/failure") is not None
    assert "### w4 (linear-w4a16)" in render(mixed, "markdown")
    assert "w4/linear/bf16/16x32x64" in render(mixed, "table")


# --- CLI: several report files in one run -----------------------------------------

CLI_CASE = ["run", "--limit", "7", "--dtype", "bf16", "--shape", "32x64", "--device", "cpu",
            "--backend", "torch-eager,no-clamp"]


@pytest.fixture
def no_clamp_registered(registered):
    registered(Backend(name="no-clamp", kind="gated", call=ignores_clamp))


def output_args(tmp_path):
    paths = {fmt: tmp_path / "out" / f"report.{ext}" for fmt, ext in
             (("json", "json"), ("junit", "xml"), ("markdown", "md"), ("csv", "csv"))}
    args = [arg for fmt, path in paths.items() for arg in (f"--output-{fmt}", str(path))]
    return paths, args


def test_several_report_files_in_one_run_all_exist_and_agree(tmp_path, no_clamp_registered):
    paths, args = output_args(tmp_path)
    result = CliRunner().invoke(cli, [*CLI_CASE, "--format", "json", *args], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    stdout_report = json.loads(result.stdout)  # file messages went to stderr, not into the JSON
    assert all(path.is_file() for path in paths.values())

    data = json.loads(paths["json"].read_text())
    verdicts = {r["case_id"]: r["verdict"] for r in data["results"]}
    assert verdicts == {r["case_id"]: r["verdict"] for r in stdout_report["results"]}
    assert sorted(verdicts.values()) == [FAIL, PASS]

    root = ET.parse(paths["junit"]).getroot()
    assert {c.get("name") for c in root.iter("testcase")} == set(verdicts)
    assert int(root.get("failures")) == data["summary"][FAIL] == 1

    rows = read_csv(paths["csv"].read_text(encoding="utf-8"))
    assert {r["case_id"]: r["verdict"] for r in rows} == verdicts
    for row, saved in zip(rows, data["results"]):
        assert float(row["metrics.floor_ratio"]) == saved["metrics"]["floor_ratio"]

    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "1 of 2 cases did not pass" in markdown.splitlines()[0]
    assert all(f"`{case_id}`" in markdown for case_id in verdicts)


def test_table_still_goes_to_stdout_with_report_files(tmp_path, no_clamp_registered):
    paths, args = output_args(tmp_path)
    result = CliRunner().invoke(cli, [*CLI_CASE, *args[:2]], catch_exceptions=False)
    assert result.exit_code == 1
    assert "floor ratio" in result.stdout and "json report written to" in result.stderr
    assert paths["json"].is_file() and not paths["csv"].exists()


def test_two_outputs_naming_one_file_is_a_usage_error_before_the_run(tmp_path):
    same = str(tmp_path / "r.out")
    result = CliRunner().invoke(cli, [*CLI_CASE[:-2], "--backend", "torch-eager",
                                      "--output-junit", same, "--output-csv", same])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output-junit and --output-csv both write" in lines[0]
    assert "PASS" not in result.stdout  # refused before any case ran


def test_unwritable_report_file_is_exit_two_and_the_others_are_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    good = tmp_path / "ok.csv"
    result = CliRunner().invoke(cli, [*CLI_CASE[:-2], "--backend", "torch-eager",
                                      "--output-junit", str(blocker / "j.xml"), "--output-csv", str(good)])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and "Traceback" not in result.output
    assert good.is_file() and "PASS" in result.stdout


def test_format_junit_to_stdout_parses(no_clamp_registered):
    result = CliRunner().invoke(cli, [*CLI_CASE, "--format", "junit"], catch_exceptions=False)
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout)
    assert root.get("failures") == "1" and root.get("tests") == "2"
