"""Report files beside the main output: `--output-json`, `--output-junit`,
`--output-markdown`, `--output-csv`, any combination in one run.

`report_file_options` adds the options to a click command (they arrive as keyword
arguments `output_<format>`); `ReportFiles` checks the paths before the run (so a
clash costs no GPU time) and writes every file after it. A file that cannot be
written is a one-line error and exit code 2; the other files are still written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import click

from ..errors import EXIT_USAGE, InputError
from ..results import Report
from . import render

FILE_FORMATS: dict[str, str] = {
    "json": "the JSON report",
    "junit": "JUnit XML (Jenkins, GitLab, GitHub test-report actions)",
    "markdown": 'a Markdown summary (e.g. to "$GITHUB_STEP_SUMMARY")',
    "csv": "CSV, one row per case,",
}


def option_name(fmt: str) -> str:
    return f"output_{fmt}"


def report_file_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--output-<format> PATH` for every format in FILE_FORMATS."""
    for fmt, what in reversed(list(FILE_FORMATS.items())):
        func = click.option(
            f"--output-{fmt}", option_name(fmt), metavar="PATH",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Also write {what} to PATH; combines with the other --output-* options.",
        )(func)
    return func


def write_text_file(path: Path, text: str) -> None:
    """UTF-8, line ends as rendered, parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")


@dataclass(frozen=True)
class ReportFiles:
    """The extra report files of one run: format -> path."""

    paths: dict[str, Path]

    @classmethod
    def from_options(cls, options: Mapping[str, Path | None], main_output: Path | None = None) -> "ReportFiles":
        """Take the `output_<format>` options; refuse two outputs naming one file."""
        paths = {fmt: options[option_name(fmt)] for fmt in FILE_FORMATS if options.get(option_name(fmt))}
        unknown = set(options) - {option_name(fmt) for fmt in FILE_FORMATS}
        if unknown:
            raise TypeError(f"unexpected report file options: {', '.join(sorted(unknown))}")
        seen: dict[str, str] = {}
        named = [("--output", main_output)] + [(f"--output-{fmt}", p) for fmt, p in paths.items()]
        for flag, path in named:
            if path is None:
                continue
            key = os.path.normcase(os.path.abspath(path))
            if key in seen:
                raise InputError(f"{seen[key]} and {flag} both write {path}; give each its own file")
            seen[key] = flag
        return cls(paths)

    def write(self, report: Report) -> int:
        """Write every file; 0, or EXIT_USAGE after a one-line error per unwritable file."""
        code = 0
        for fmt, path in self.paths.items():
            try:
                write_text_file(path, render(report, fmt))
            except OSError as exc:
                click.echo(f"swiglu-check: error: cannot write {path}: {exc.strerror or exc}", err=True)
                code = EXIT_USAGE
            else:
                click.echo(f"{fmt} report written to {path}", err=True)
        return code
