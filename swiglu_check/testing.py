"""pytest helpers: assert that an implementation matches the reference.

    from swiglu_check.testing import assert_matches_reference

    def test_my_kernel():
        assert_matches_reference(my_kernel, op="deepseek-v4", dtypes="bf16", limits=[7, 10])
"""

from __future__ import annotations

from typing import Any

from . import api
from .reports.table import failure_table
from .results import Report

DEFAULT_SHAPES = ("64x512", "17x1031")


def assert_matches_reference(backend: Any, **settings: Any) -> Report:
    """Run the check and raise AssertionError, with the table of failing cases as its
    message, unless every case passes. `backend` is anything `swiglu_check.api.check`
    takes (a function `fn(x, *, limit, ...) -> y`, a Backend, a name); `settings` are
    `build_settings` arguments (defaults: device cpu, small shapes)."""
    settings.setdefault("device", "cpu")
    settings.setdefault("shapes", DEFAULT_SHAPES)
    report = api.check(backend, **settings)
    if not report.results:
        raise AssertionError("swiglu-check ran no case")
    if not report.passed:
        raise AssertionError("\n" + failure_table(report))
    return report
