"""Exit codes and the errors a user sees as one line: ``ml: error: what (how to fix)``."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes shared by every ``ml`` command."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    INTERRUPTED = 130


class VmlError(Exception):
    """An error with a message meant for the user, not a traceback.

    ``detail`` holds optional extra lines (a source line and a caret) printed after
    the one-line message.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class UsageError(VmlError):
    """Bad input from the command line or a config file (exit code 2)."""

    exit_code = ExitCode.USAGE


class NotFoundError(VmlError):
    """A project, run or file that does not exist (exit code 3)."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(VmlError):
    """Something already exists or is in use (exit code 4)."""

    exit_code = ExitCode.CONFLICT
