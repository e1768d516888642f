"""The ``ml`` command. Its commands are in ``vml.cli.commands`` (Typer over
``vml.api``); this package's import stays light so that a shell's tab key, which starts
``ml`` once per press, is answered from the store before Typer is imported
(``vml.cli.fastcomplete``)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vml.cli.commands import app, click_error, command_path

__all__ = ["app", "click_error", "command_path", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``ml``."""
    if os.environ.get("_ML_COMPLETE"):  # fastcomplete.COMPLETE_VARIABLE, not imported yet
        from vml.cli import fastcomplete

        if fastcomplete.answer():
            sys.exit(0)
    from vml.cli.commands import run

    run(argv)


def __getattr__(name: str) -> Any:
    if name in ("app", "click_error", "command_path"):
        from vml.cli import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'vml.cli' has no attribute {name!r}")
