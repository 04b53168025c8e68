"""Exceptions with a defined meaning for the CLI's exit codes."""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


class InputError(ValueError):
    """Bad input from the user (unknown name, malformed value): exit code 2, one line."""


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says why."""
