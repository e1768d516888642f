"""Shell completion of run names without Typer: ``ml show <TAB>`` answered from the
store's name index before the CLI is imported.

Importing the whole CLI takes three times as long as starting Python (Typer alone
about twice), so ``vml.cli.main`` asks :func:`answer` first whenever the completion
variable (``_ML_COMPLETE``) is set. It answers when the word being completed is a
run (or stored model) argument of a command in :data:`RUN_ARGUMENTS` with only
run words before it; anything else (options, hyperparameters, choices, command
names) is left to Typer's completion, through the hooks in ``vml.cli.complete``,
which reads the same table and calls the same :func:`candidates`.

This module imports nothing of vml above ``vml.paths`` and ``vml.store.lookup``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from vml.paths import PROJECT_DIR_VARIABLE, db_path, models_dir, project_file

COMPLETE_VARIABLE = "_ML_COMPLETE"  # click's _{PROG}_COMPLETE for prog_name "ml"

RUN = "run"  # a run: name, @name, @last
SERVED = "served"  # a run or a stored model (ml serve)
MODEL = "model"  # a stored model's version, NAME:vN (ml models delete)

# The one place that says which positional arguments are runs: per command (a group's
# subcommand as "models delete"), its leading positionals in order as (parameter name,
# nargs, kind); kind None is a positional that is not a run (ml plot's KIND).
# tests/test_completion.py checks it against the commands' parameters.
RUN_ARGUMENTS: dict[str, tuple[tuple[str, int, str | None], ...]] = {
    "show": (("run", 1, RUN),),
    "logs": (("run", 1, RUN),),
    "wait": (("runs", -1, RUN),),
    "cancel": (("runs", -1, RUN),),
    "delete": (("runs", -1, RUN),),
    "compare": (("runs", -1, RUN),),
    "diff": (("a", 1, RUN), ("b", 1, RUN)),
    "resume": (("run", 1, RUN),),
    "test": (("run", 1, RUN),),
    "predict": (("run", 1, RUN),),  # then the files: the shell's own completion
    "export": (("args", -1, RUN),),  # RUN... [DIR]: a directory matches no run, so files
    "tensorboard": (("runs", -1, RUN),),
    "plot": (("kind", 1, None), ("run", 1, RUN)),
    "rerun": (("run", 1, RUN),),
    "store": (("run", 1, RUN),),
    "serve": (("target", 1, SERVED),),
    "models delete": (("ref", 1, MODEL),),
}

# Past this many matching names completion offers where they branch (see run_names).
LIMIT = 500
LAST = "@last"


def answer(environ: Mapping[str, str] = os.environ) -> bool:
    """Answer the shell's completion request in ``environ`` when it asks for a run
    argument; False when it asks for something else (Typer's completion answers)."""
    instruction = environ.get(COMPLETE_VARIABLE, "")
    kind, _, shell = instruction.partition("_")
    if kind != "complete" or shell not in ("bash", "zsh", "fish"):
        return False
    try:
        args, incomplete = shell_words(shell, environ)
        found = _run_position(args, incomplete)
        if found is None:
            return False
        values = candidates(found, incomplete)
    except Exception:  # a tab key never shows a traceback; Typer's completion tries next
        return False
    _reply(shell, values, environ)
    return True


def shell_words(shell: str, environ: Mapping[str, str]) -> tuple[list[str], str]:
    """The words before the one being completed (without ``ml``) and that word, as
    Typer's completion scripts pass them (``COMP_WORDS``/``COMP_CWORD`` for bash,
    ``_TYPER_COMPLETE_ARGS`` for zsh and fish)."""
    if shell == "bash":
        words = _split(environ.get("COMP_WORDS", ""))
        cword = int(environ.get("COMP_CWORD") or 0)
        return words[1:cword], words[cword] if cword < len(words) else ""
    line = environ.get("_TYPER_COMPLETE_ARGS", "")
    words = _split(line)[1:]
    if words and not line.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


def _split(line: str) -> list[str]:
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:  # an open quote: the partial word as typed
        words.append(lexer.token)
    return words


def _run_position(args: list[str], incomplete: str) -> str | None:
    """The kind of argument ``incomplete`` is (``RUN``, ``SERVED``, ``MODEL``) when it
    is a run position with nothing but plain words before it; else None."""
    if incomplete.startswith("-") or any(word.startswith("-") for word in args):
        return None
    if all(word.startswith("@") for word in args):  # VergeML's ml @NAME... COMMAND
        return RUN if incomplete.startswith("@") else None
    for size in (2, 1):
        key = " ".join(args[:size])
        if len(args) >= size and key in RUN_ARGUMENTS:
            return position_kind(RUN_ARGUMENTS[key], len(args) - size)
    return None


def position_kind(positionals: tuple[tuple[str, int, str | None], ...], index: int) -> str | None:
    """The kind of the ``index``-th positional word among ``positionals``."""
    for _name, nargs, kind in positionals:
        if nargs == -1 or index < nargs:
            return kind
        index -= nargs
    return None


def candidates(kind: str, incomplete: str, start: Path | None = None) -> list[str]:
    """What completes ``incomplete`` as an argument of ``kind``: run names (``@name``
    when it starts with ``@``, and ``@last``), stored models (``NAME``, and
    ``NAME:vN`` once a colon is typed)."""
    root = project_root(start)
    if root is None:
        return []
    if kind == MODEL:
        return model_refs(root, incomplete, versions=True)
    values = run_refs(root, incomplete)
    if kind == SERVED:
        values = model_refs(root, incomplete, versions=":" in incomplete) + values
    return values


def run_refs(root: Path, incomplete: str) -> list[str]:
    """Run names starting with ``incomplete`` (a leading ``@`` kept), then ``@last``."""
    from vml.store.lookup import run_names

    at = "@" if incomplete.startswith("@") else ""
    names, _ = run_names(db_path(root), incomplete[len(at) :], LIMIT)
    values = [at + name for name in names]
    if LAST.startswith(incomplete) and (names or run_names(db_path(root), "", 1)[0]):
        values.append(LAST)
    return values


def model_refs(root: Path, incomplete: str, versions: bool) -> list[str]:
    """Stored model names starting with ``incomplete``; with ``versions``, each
    version too (``NAME:v1``, ``NAME:v2``) and ``NAME:latest``."""
    from vml.model_store import LATEST, NAME_PATTERN, VERSION_PATTERN

    try:
        names = sorted(entry.name for entry in os.scandir(models_dir(root)) if entry.is_dir())
    except OSError:
        return []
    values = []
    for name in names:
        if not NAME_PATTERN.fullmatch(name) or not name.startswith(incomplete.partition(":")[0]):
            continue
        try:
            found = sorted(
                int(m.group(1))
                for m in map(VERSION_PATTERN.fullmatch, os.listdir(models_dir(root) / name))
                if m
            )
        except OSError:
            continue
        if not found:
            continue
        refs = [f"{name}:v{version}" for version in found] + [f"{name}:{LATEST}"] if versions else [name]
        values += [ref for ref in refs if ref.startswith(incomplete)]
    return values


def project_root(start: Path | None = None) -> Path | None:
    """The project at or above ``start`` (``ml --project-dir``'s, else the current
    directory), as ``vml.config.find_project_root`` finds it; None outside one.
    (Not that function: ``vml.config`` takes longer to import than a completion may.)"""
    start = Path(start or os.environ.get(PROJECT_DIR_VARIABLE) or ".").resolve()
    for directory in (start, *start.parents):
        if project_file(directory).is_file():
            return directory
    return None


def _reply(shell: str, values: list[str], environ: Mapping[str, str]) -> None:
    """Print ``values`` the way Typer's completion script for ``shell`` reads them."""
    if shell == "bash":
        print("\n".join(values))
    elif shell == "zsh":
        if values:
            quoted = "\n".join(f'"{_zsh_escape(value)}"' for value in values)
            print(f"_arguments '*: :(({quoted}))'")
        else:
            print("_files")
    elif environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
        sys.exit(0 if values else 1)  # whether fish should offer these instead of files
    elif values:
        print("\n".join(values))


def _zsh_escape(value: str) -> str:
    # typer's ZshComplete.format_completion
    for old, new in (('"', '""'), ("'", "''"), ("$", "\\$"), ("`", "\\`"), (":", r"\\:")):
        value = value.replace(old, new)
    return value
