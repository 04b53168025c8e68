"""JUnit XML: one `<testsuite>` per backend, one `<testcase>` per case.

Written for what the common consumers read:

- Jenkins (JUnit plugin): `classname` splits at its last dot into package and class,
  `<failure message=...>` is the one-line summary and its text the details,
  `<skipped message=...>`, suite `<properties>`;
- GitLab: `classname` is shown as the suite, `name` as the test; only the *text* of
  `<failure>`/`<error>`/`<skipped>` is shown (not `message`), so the text repeats the
  reasons before the numbers; `<system-out>` of a testcase is shown too;
- GitHub actions (mikepenz/action-junit-report, dorny/test-reporter,
  EnricoMi/publish-unit-test-result-action): `message` and text of failures, counts
  on the suites.

FAIL and INCONCLUSIVE are `<failure>` (type = the verdict), ERROR is `<error>`, SKIP is
`<skipped>`. The output is pure ASCII (anything else as character references), so it
is valid UTF-8 whatever encoding the file is written in; characters XML 1.0 cannot
hold at all (control characters, lone surrogates) are written as `\\xNN` escapes.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from ..results import ERROR, FAIL, INCONCLUSIVE, SKIP, CaseResult, Report
from .common import column_line, columns_for, exact_text, group_by_backend

SUITES_NAME = "swiglu-check"
CLASSNAME_PREFIX = "swiglu-check"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: Any) -> str:
    """Text XML 1.0 can carry: characters it forbids become visible `\\xNN` escapes."""
    text = str(text).replace("\r\n", "\n")
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def classname(backend: str) -> str:
    """Stable `swiglu-check.<backend>`; dots in the backend name would split it into
    packages in Jenkins, so they become underscores."""
    return f"{CLASSNAME_PREFIX}.{backend.replace('.', '_')}"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.6f}"


def _counts(results: list[CaseResult]) -> dict[str, str]:
    failures = sum(r.verdict in (FAIL, INCONCLUSIVE) for r in results)
    errors = sum(r.verdict == ERROR for r in results)
    skipped = sum(r.verdict == SKIP for r in results)
    return {
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": _seconds(sum(r.seconds for r in results)),
    }


def numbers_text(result: CaseResult) -> str:
    """The case's numbers: the kind's table row, then every metric and param exactly."""
    lines = []
    row = column_line(result, columns_for(result.kind))
    if row:
        lines.append(row)
    if result.metrics:
        lines.append("metrics:")
        lines += [f"  {key} = {exact_text(value)}" for key, value in result.metrics.items()]
    if result.params:
        lines.append("params:")
        lines += [f"  {key} = {exact_text(value)}" for key, value in result.params.items()]
    if result.warnings:
        lines.append("warnings:")
        lines += [f"  {w}" for w in result.warnings]
    if result.interpreted:
        lines.append("ran through the Triton interpreter")
    return "\n".join(lines)


def _problem_text(result: CaseResult) -> str:
    parts = [f"{result.verdict}: {reason}" for reason in result.reasons] or [result.verdict]
    numbers = numbers_text(result)
    if numbers:
        parts += ["", numbers]
    if result.details:
        parts += ["", result.details.rstrip()]
    return "\n".join(parts)


def _testcase(result: CaseResult) -> ET.Element:
    case = ET.Element("testcase", {
        "name": xml_safe(result.case_id),
        "classname": xml_safe(classname(result.backend)),
        "time": _seconds(result.seconds),
    })
    message = xml_safe("; ".join(result.reasons) or result.verdict)
    if result.verdict in (FAIL, INCONCLUSIVE):
        ET.SubElement(case, "failure", {"message": message, "type": result.verdict}).text = xml_safe(_problem_text(result))
    elif result.verdict == ERROR:
        ET.SubElement(case, "error", {"message": message, "type": ERROR}).text = xml_safe(_problem_text(result))
    elif result.verdict == SKIP:
        ET.SubElement(case, "skipped", {"message": message}).text = message
    else:
        numbers = numbers_text(result)
        if numbers:
            ET.SubElement(case, "system-out").text = xml_safe(numbers)
    return case


def _property_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return exact_text(value)


def _properties(report: Report) -> ET.Element:
    properties = ET.Element("properties")
    for key, value in report.environment.items():
        ET.SubElement(properties, "property", {"name": xml_safe(key), "value": xml_safe(_property_value(value))})
    if report.settings:
        ET.SubElement(properties, "property", {"name": "settings", "value": xml_safe(_property_value(report.settings))})
    return properties


def junit_tree(report: Report) -> ET.Element:
    """The `<testsuites>` element of a report."""
    root = ET.Element("testsuites", {"name": SUITES_NAME, **_counts(report.results)})
    for (backend, _kind), results in group_by_backend(report).items():
        suite = ET.SubElement(root, "testsuite", {"name": xml_safe(backend), **_counts(results)})
        suite.append(_properties(report))
        for result in results:
            suite.append(_testcase(result))
    return root


def render_junit(report: Report) -> str:
    root = junit_tree(report)
    ET.indent(root)
    body = ET.tostring(root, encoding="us-ascii", xml_declaration=False).decode("ascii")
    return XML_DECLARATION + body + "\n"
