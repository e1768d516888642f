"""The arguments and options several commands share: the runs they act on and
``--format``. Typer reads these objects as defaults, so one object serves every
command that declares the parameter with it. Which arguments are runs, for shell
completion, is ``vml.cli.fastcomplete.RUN_ARGUMENTS`` (read before Typer is imported)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer

from vml.errors import UsageError

RUNS_HELP = "Runs: names, @name, unique prefixes, or @last."

RUN = typer.Argument(..., help="A run: its name, @name, a unique prefix, or @last.")
RUNS = typer.Argument(..., help=RUNS_HELP)
OPTIONAL_RUNS = typer.Argument(None, help=RUNS_HELP)  # ml wait/cancel: or --sweep
COMPARED_RUNS = typer.Argument(..., help="Two or more runs: names, @name, unique prefixes, or @last.")

TABLE_JSON = ("table", "json")
FORMATS = ("table", "json", "csv")
LIST_FORMATS = (*FORMATS, "md")


def format_option(formats: Sequence[str]) -> Any:
    """``--format``/``-f`` (default ``table``) for a command offering ``formats``;
    its help names them, e.g. ``table, json or csv.``"""
    named = ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]
    return typer.Option("table", "--format", "-f", help=f"{named}.", autocompletion=choices(formats))


def choices(values: Sequence[str]) -> Callable[[], list[str]]:
    """An ``autocompletion=`` for an option whose value is one of ``values`` (Typer keeps
    those that start with the word typed)."""
    return lambda: list(values)


def check_format(fmt: str, formats: Sequence[str]) -> None:
    """Refuse a ``--format`` the command does not offer."""
    if fmt not in formats:
        raise UsageError(f"unknown format {fmt!r} (use one of: {', '.join(formats)})")


_typed: list[str] = []


def remember_arguments(argv: list[str]) -> None:
    """Keep ``ml``'s arguments as vml reads them (VergeML's forms translated)."""
    _typed[:] = argv


def command_text() -> str:
    """This command as typed, in vml's form (``ml queue --learning-rate=0.1,0.01``):
    the label of the sweep or study it starts."""
    return " ".join(["ml", *_typed])


def command_group() -> typer.Typer:
    """A group of subcommands (``ml cache ...``, ``ml models ...``), built as the root
    app is: errors as one line, no completion options of its own."""
    return typer.Typer(
        subcommand_metavar="[COMMAND] [ARGS]...",
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
