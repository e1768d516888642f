"""Typer's shell completion, taught vml's words: run names for every run argument
(``vml.cli.fastcomplete.RUN_ARGUMENTS``), the project's declared hyperparameters and
their choices after ``ml train``/``queue``/``tune``; ``choices`` (from
``vml.cli.options``) for an option's fixed values such as ``--format``.

``ml --install-completion`` writes Typer's script for the shell; on each tab the
script runs ``ml`` with ``_ML_COMPLETE`` set. ``vml.cli.main`` answers run arguments
itself first (``fastcomplete``, without Typer); what is left comes here, through
:func:`use_vml_completion`'s shell classes: Typer's, with one method replaced.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import typer
from typer import _completion_classes
from typer.core import TyperCommand

from vml.cli import fastcomplete
from vml.cli.options import choices
from vml.params import display_key, normalize_key

__all__ = ["HyperparameterCommand", "choices", "completions", "use_vml_completion"]

# click, as typer vendors it: its completion internals (how it finds the context and
# the parameter a word belongs to) are reused, not copied.
_shell = importlib.import_module(f"{typer.BadParameter.__module__.rpartition('.')[0]}.shell_completion")
CompletionItem = _shell.CompletionItem


class HyperparameterCommand(TyperCommand):
    """``ml train``/``queue``/``tune``: a command whose extra ``--KEY=VALUE`` words are the
    project's hyperparameters, completed by :func:`completions` (click does not know
    them: they are no declared options)."""


def use_vml_completion() -> None:
    """Register vml's shell classes in place of Typer's (call after
    ``typer.main.get_command``, which registers Typer's)."""
    shells = (
        _completion_classes.BashComplete,
        _completion_classes.ZshComplete,
        _completion_classes.FishComplete,
        _completion_classes.PowerShellComplete,
    )
    for base in shells:
        names = ("powershell", "pwsh") if base is _completion_classes.PowerShellComplete else (base.name,)
        for name in names:
            _shell.add_completion_class(_vml_shell(base), name)


def _vml_shell(base: type) -> type:
    class Shell(base):  # type: ignore[misc, valid-type]
        def get_completions(self, args: list[str], incomplete: str) -> list[Any]:
            try:
                return completions(self.cli, self.ctx_args, self.prog_name, args, incomplete)
            except Exception:  # a tab key never shows a traceback (VML_DEBUG=1 does)
                if os.environ.get("VML_DEBUG"):
                    raise
                return []

    Shell.__name__ = Shell.__qualname__ = f"Vml{base.__name__}"
    return Shell


def completions(
    cli: Any, ctx_args: dict[str, Any], prog_name: str, args: list[str], incomplete: str
) -> list[Any]:
    """What completes ``incomplete`` after ``ml ARGS``: click's answer, except for run
    arguments and hyperparameters."""
    args = _translated(args)
    if len(args) >= 2 and args[-1] == "=" and args[-2].startswith("-"):
        args = args[:-1]  # bash splits --format=js into --format, =, js
        hyperparameter_value = True
    else:
        hyperparameter_value = False
    ctx = _shell._resolve_context(cli, ctx_args, prog_name, args)
    key = ctx.command_path.partition(" ")[2]  # "show", "models delete"; "" at the root
    if isinstance(ctx.command, HyperparameterCommand):
        found = hyperparameters(ctx, args, incomplete, hyperparameter_value)
        if found is not None:
            return found
    item, incomplete = _shell._resolve_incomplete(ctx, args, incomplete)
    kind = {name: kind for name, _nargs, kind in fastcomplete.RUN_ARGUMENTS.get(key, ())}.get(
        getattr(item, "name", None)
    )
    if kind is not None and item in ctx.command.params:
        return [CompletionItem(value) for value in fastcomplete.candidates(kind, incomplete)]
    return item.shell_complete(ctx, incomplete)


def _translated(args: list[str]) -> list[str]:
    """``args`` in vml's form, VergeML's global options (``ml --project-dir=D show``)
    taken out and put in the environment, as ``ml`` runs them; as typed where they do
    not translate (a word half typed)."""
    from vml.cli import vergeml_args

    joined: list[str] = []  # bash splits --key=value into --key, =, value
    words = iter(args)
    for word in words:
        if word == "=" and joined and joined[-1].startswith("-"):
            following = next(words, None)
            if following is None:  # the value is the word being completed
                joined.append(word)
            else:
                joined[-1] += f"={following}"
        else:
            joined.append(word)
    try:
        translated = vergeml_args.translate(joined)
    except Exception:
        return joined
    os.environ.update(translated.env)
    return translated.argv


def hyperparameters(ctx: Any, args: list[str], incomplete: str, after_equals: bool) -> list[Any] | None:
    """Completion of a hyperparameter word of ``ml train``/``queue``/``tune``: its name
    (``--lea`` -> ``--learning-rate``, beside the command's options), or the choices of
    its value (``--optimizer <TAB>``, ``--optimizer=<TAB>``, ``--optimizer=adam,<TAB>``);
    None for a word that is not one (click answers)."""
    declared = {opt for param in ctx.command.params for opt in (*param.opts, *param.secondary_opts)}
    if incomplete.startswith("--") and "=" in incomplete:  # zsh and fish keep --key=value one word
        key, _, value = incomplete.partition("=")
        if key in declared:
            return None
        return [CompletionItem(f"{key}={choice}") for choice in _choices(ctx, key, value)]
    last = args[-1] if args else ""
    if last.startswith("--") and "=" not in last and last not in declared and not incomplete.startswith("-"):
        param = _declared(ctx).get(normalize_key(last[2:]))
        if param is not None and (param.type is not bool or after_equals):
            return [CompletionItem(choice) for choice in _choices(ctx, last, incomplete)]
    if incomplete.startswith("-"):
        like = incomplete[2:]
        names = [
            CompletionItem(f"--{display_key(param.name, like)}", help=param.help)
            for param in _declared(ctx).values()
        ]
        names = [item for item in names if item.value.startswith(incomplete)]
        return names + ctx.command.shell_complete(ctx, incomplete)
    return None


def _choices(ctx: Any, key: str, typed: str) -> list[str]:
    """The values of hyperparameter ``--key`` that complete ``typed``: its choices (true or
    false for a switch); in a list of values (a sweep), the last one, after the others."""
    param = _declared(ctx).get(normalize_key(key.lstrip("-")))
    if param is None:
        return []
    choices = param.choices or (("true", "false") if param.type is bool else ())
    head, comma, last = typed.rpartition(",")
    taken = head.split(",") if comma else []
    return [f"{head}{comma}{choice}" for choice in choices if choice.startswith(last) and choice not in taken]


def _declared(ctx: Any) -> dict[str, Any]:
    """The project's declared hyperparameters by name (the training loop's alone
    outside a project), read once per completion."""
    found = ctx.meta.get("vml.hyperparameters")
    if found is None:
        from vml import api

        try:
            params = api.Project().config.declared_hyperparameters()
        except Exception:  # outside a project, or a vergeml.yaml that does not load
            from vml.params import TRAINING_PARAMS

            params = TRAINING_PARAMS
        found = ctx.meta["vml.hyperparameters"] = {param.name: param for param in params}
    return found
