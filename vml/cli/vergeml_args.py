"""VergeML 0.1.4's command-line forms, rewritten into vml's before Typer reads them.

- ``ml [GLOBAL OPTIONS] [@NAME...] COMMAND [ARGS]``: VergeML's global options
  (``--file``/``-f``, ``--model``/``-m``, ``--samples-dir``, ``--project-dir``, ...) go
  before the command or, spelled long, anywhere after it (VergeML forgave the order).
  Project settings become environment variables that every process of the command
  reads (``vml.paths``, ``vml.config``); ``--random-seed`` and ``--device`` become
  hyperparameters of ``ml train``/``queue``/``tune``.
- ``ml @NAME COMMAND ...`` -> ``ml COMMAND @NAME ...``; ``ml @NAME plot:roc`` -> ``ml plot roc @NAME``.
- ``ml --model=cnn new NAME`` -> ``ml new NAME --model=cnn`` (the template of that model).
- ``ml list test-acc -gt 0.8`` -> ``ml list "test-acc -gt 0.8"`` (one filter word each).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vml.cli.plot import ALIASES as PLOT_ALIASES
from vml.config import SETTING_VARIABLES
from vml.errors import UsageError
from vml.params import display_key
from vml.paths import (
    CACHE_DIR_VARIABLE,
    PROJECT_DIR_VARIABLE,
    PROJECT_FILE_VARIABLE,
    TRAININGS_DIR_VARIABLE,
)

FOLDER_VARIABLES = {"trainings-dir": TRAININGS_DIR_VARIABLE, "cache-dir": CACHE_DIR_VARIABLE}
SETTINGS = {display_key(key): variable for key, variable in SETTING_VARIABLES.items()}
HYPERPARAMETERS = ("random-seed", "device")
# Every VergeML global option takes a value (vergeml/__main__.py _parsebase).
GLOBAL_OPTIONS = {"file", "project-dir", *FOLDER_VARIABLES, *SETTINGS, *HYPERPARAMETERS, "device-memory"}
SHORT_OPTIONS = {"-f": "file", "-m": "model"}  # before the command only: after it -f is --format
ROOT_OPTIONS = ("--version", "--help", "-h")

TRAINING_COMMANDS = ("train", "queue", "tune")
ONE_RUN_COMMANDS = ("show", "logs", "plot", "rerun", "resume", "test", "predict", "store", "serve")
# export: one run for --format model (it says so itself), several for tensorboard and mlflow.
RUNS_COMMANDS = ("diff", "compare", "wait", "cancel", "delete", "export", "tensorboard")
_RUN_NAME = re.compile(r"@[A-Za-z0-9_-]+")  # VergeML's parse_trained_models

# ml list's options that take a value: the word after one is never a filter's column.
LIST_VALUE_OPTIONS = ("--sort", "-s", "--format", "-f", "--output", "--order", "-o")
LIST_VALUE_OPTIONS += ("--status", "--where", "-w", "--columns", "-c", "--sweep")
FILTER_OPERATORS = ("-eq", "-ne", "-neq", "-gt", "-ge", "-gte", "-lt", "-le", "-lte")


@dataclass
class Translated:
    """The argv Typer reads, the environment the command runs with, and notes to print."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def translate(argv: list[str]) -> Translated:
    """VergeML's forms in ``argv`` (``ml``'s arguments) rewritten into vml's; a form
    that cannot be read raises ``UsageError``."""
    given, root, names, rest = _before_command(argv)
    if not rest:
        if names:
            raise UsageError(f"{' '.join(names)}: a command follows the run (e.g. ml {names[0]} show)")
        return Translated(root)  # ml alone, ml --version, ml --help
    command, args = rest[0], rest[1:]
    if command in PLOT_ALIASES:  # VergeML's ml plot:roc RUN
        command, args = "plot", [PLOT_ALIASES[command], *args]
    args, after = _options_after(command, args)
    out = Translated([])
    args += _apply(command, [*given, *after], out)  # last: a queue's runs file comes first
    if names:
        args = _place_runs(command, names, args)
    if command == "list":
        args = _group_filters(args)
    out.argv = [*root, command, *args]
    return out


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Run with ``values`` set in ``os.environ`` (the processes the command starts
    inherit them), restored afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _before_command(argv: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str], list[str]]:
    """Split off what precedes the command: global options ``(name, value)``, ml's own
    options, ``@NAME`` runs; and the command with what follows it."""
    given: list[tuple[str, str]] = []
    root: list[str] = []
    names: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if _RUN_NAME.fullmatch(word):
            names.append(word)
        elif word in ROOT_OPTIONS or word == "-v":  # VergeML's -v is --version
            root.append("--version" if word == "-v" else word)
        elif word.startswith("--"):
            name, value, i = _long_option(argv, i)
            if name not in GLOBAL_OPTIONS:
                raise UsageError(
                    f"unknown option {word!r} before the command "
                    f"(hyperparameters go after it, e.g. ml train {word}; ml --help lists ml's options)"
                )
            given.append((name, value))
        elif word[:2] in SHORT_OPTIONS:
            value = word[2:]
            if not value:
                if i + 1 >= len(argv):
                    raise UsageError(f"{word} needs a value (e.g. {word} {_EXAMPLES[SHORT_OPTIONS[word]]})")
                i += 1
                value = argv[i]
            given.append((SHORT_OPTIONS[word[:2]], value))
        elif word.startswith("-") and word != "-":
            raise UsageError(f"unknown option {word!r} before the command (ml --help lists ml's options)")
        else:
            return given, root, names, argv[i:]
        i += 1
    return given, root, names, []


def _long_option(argv: list[str], i: int) -> tuple[str, str, int]:
    """``--name=value`` or ``--name value`` at ``argv[i]``: ``(name, value, index of its
    last word)``; the name in VergeML's spelling (``--samples_dir`` reads as ``samples-dir``)."""
    key, equals, value = argv[i][2:].partition("=")
    name = display_key(key)
    if equals or name not in GLOBAL_OPTIONS:
        return name, value, i
    if i + 1 >= len(argv):
        raise UsageError(f"--{name} needs a value (e.g. --{name}={_EXAMPLES.get(name, 'VALUE')})")
    return name, argv[i + 1], i + 1


def _options_after(command: str, args: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Take VergeML's global options, spelled long, out of the command's arguments
    (VergeML's _forgive_wrong_option_order). ``--random-seed``/``--device`` stay where
    they are for the commands whose hyperparameters they are."""
    kept: list[str] = []
    taken: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            kept += args[i:]
            break
        if word.startswith("--"):
            name = display_key(word[2:].partition("=")[0])
            training = command in TRAINING_COMMANDS and name in HYPERPARAMETERS
            if name in GLOBAL_OPTIONS and not training:
                name, value, i = _long_option(args, i)
                taken.append((name, value))
                i += 1
                continue
        kept.append(word)
        i += 1
    return kept, taken


def _apply(command: str, given: list[tuple[str, str]], out: Translated) -> list[str]:
    """Turn the global options into environment variables and notes on ``out``;
    return those that become options of the command (hyperparameters, ``ml new
    --model``)."""
    options = []
    for name, value in given:
        if name == "model" and command == "new":
            options.append(f"--model={value}")
        elif name == "project-dir":
            out.env[PROJECT_DIR_VARIABLE] = str(_existing(value, name, Path.is_dir, "directory"))
        elif name == "file":
            out.env[PROJECT_FILE_VARIABLE] = str(_existing(value, name, Path.is_file, "file"))
        elif name in FOLDER_VARIABLES:
            out.env[FOLDER_VARIABLES[name]] = _folder(value, name)
        elif name in SETTINGS:
            out.env[SETTINGS[name]] = value
        elif name in HYPERPARAMETERS and command in TRAINING_COMMANDS:
            options.append(f"--{name}={value}")
        elif name in HYPERPARAMETERS:
            out.notes.append(
                f"--{name} is a hyperparameter of ml train, queue and tune in vml; ml {command} ignores it "
                f"(vml's form: ml train --{name}={value})"
            )
        else:  # device-memory
            out.notes.append("vml has no --device-memory (PyTorch takes GPU memory as it needs it); ignored")
    return options


def _existing(value: str, name: str, check, kind: str) -> Path:
    path = Path(value).expanduser()
    if not check(path):
        raise UsageError(
            f"--{name} {value!r}: no such {kind} (give an existing {kind}, e.g. --{name}={_EXAMPLES[name]})"
        )
    return path.resolve()


def _folder(value: str, name: str) -> str:
    """A trainings or cache folder: absolute, or relative to the project and inside it."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    normal = os.path.normpath(path)
    if not value.strip() or normal == "." or normal.startswith(".."):
        raise UsageError(
            f"--{name} {value!r} is not a folder inside the project "
            f"(give one, e.g. --{name}={_EXAMPLES[name]}, or an absolute path)"
        )
    return normal


def _place_runs(command: str, names: list[str], args: list[str]) -> list[str]:
    """VergeML's ``ml @NAME COMMAND ARGS``: the runs go where vml's command takes them."""
    shown = " ".join(names)
    if command not in ONE_RUN_COMMANDS + RUNS_COMMANDS:
        takes = ", ".join(ONE_RUN_COMMANDS + RUNS_COMMANDS)
        raise UsageError(
            f"ml {shown} {command}: {command} takes no run (ml @NAME COMMAND works for: {takes})"
        )
    if command in ONE_RUN_COMMANDS and len(names) > 1:
        raise UsageError(f"ml {shown} {command}: {command} takes one run (name one of them)")
    at = 1 if command == "plot" and args and not args[0].startswith("-") else 0  # after plot's KIND
    return [*args[:at], *names, *args[at:]]


def _group_filters(args: list[str]) -> list[str]:
    """VergeML's ``COLUMN -OP VALUE`` filters of ``ml list`` as one word each, so that
    ``-gt`` does not read as an option."""
    out: list[str] = []
    column = None  # the index in out of the last word that could be a filter's column
    i = 0
    while i < len(args):
        word = args[i]
        if word in FILTER_OPERATORS:
            if column is None or column != len(out) - 1 or i + 1 >= len(args):
                raise UsageError(
                    f"ml list: {word} needs a column before it and a value after it (e.g. ml list test-acc {word} 0.8)"
                )
            out[-1] = f"{out[-1]} {word} {args[i + 1]}"
            column = None
            i += 2
            continue
        out.append(word)
        if word == "--":
            return out + args[i + 1 :]
        if word in LIST_VALUE_OPTIONS and i + 1 < len(args):
            out.append(args[i + 1])
            i += 1
            column = None
        else:
            column = None if word.startswith("-") else len(out) - 1
        i += 1
    return out


_EXAMPLES = {
    "file": "vergeml.yaml",
    "model": "cnn",
    "project-dir": "demo",
    "samples-dir": "samples",
    "trainings-dir": "trainings",
    "cache-dir": ".cache",
    "val-split": "10%",
    "test-split": "10%",
    "random-seed": "42",
    "device": "cpu",
    "cache": "mem",
    "device-memory": "80%",
}
