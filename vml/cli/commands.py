"""The ``ml`` command tree: a thin Typer skin over ``vml.api``. Errors print as one
line, ``ml: error: ...``, with the exit code from ``vml.errors.ExitCode``; ``--debug``
(or ``VML_DEBUG=1``) shows the traceback instead. ``vml.cli.main`` runs it."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer

from vml import __version__
from vml.cli import (
    cache,
    compare,
    complete,
    dashboard,
    export,
    lifecycle,
    list_runs,
    models,
    new,
    plot,
    preprocess,
    reproduce,
    runs,
    serve,
    show,
    sweep,
    train,
    tune,
    vergeml_args,
)
from vml.cli import help as help_cmd
from vml.cli.options import remember_arguments
from vml.errors import ExitCode, VmlError

# The click that typer runs on (typer 0.2x vendors its own): its refusals of a command line.
clicks = importlib.import_module(typer.BadParameter.__module__)

app = typer.Typer(
    name="ml",
    help="vml: train PyTorch models from the terminal and keep track of every run.\n\n"
    "VergeML's global options work before the command (or, spelled long, after it): "
    "--file/-f, --model/-m, --project-dir, --samples-dir, --trainings-dir, --cache-dir, "
    "--val-split, --test-split, --cache, --random-seed, --device; so does ml @NAME COMMAND.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


def _version(value: bool) -> None:
    if value:
        print(f"vml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    global _debug
    _debug = _debug or debug


app.command("new")(new.new)
# The commands that take --HYPERPARAMETER=... beyond their own options (completed
# from the project's declarations by complete.HyperparameterCommand).
for name, command, values in (
    ("train", train.train, "VALUE"),
    ("queue", sweep.queue, "VALUES"),
    ("tune", tune.tune, "RANGE"),
):
    app.command(
        name,
        cls=complete.HyperparameterCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        options_metavar=f"[OPTIONS] [--HYPERPARAMETER={values}]...",
    )(command)
app.command("list")(list_runs.list_runs)
app.command("show")(show.show)
app.command("compare")(compare.compare_runs)
app.command("diff")(reproduce.diff)
app.command("logs")(show.logs)
app.command("wait")(lifecycle.wait)
app.command("cancel")(lifecycle.cancel)
app.command("delete")(lifecycle.delete)
app.command("prune")(lifecycle.prune)
app.command("dashboard")(dashboard.dashboard)
app.command("preprocess")(preprocess.preprocess)
app.command("resume")(runs.resume)
app.command("test")(runs.test)
app.command("plot")(plot.plot)
app.command("rerun")(reproduce.rerun)
app.command("predict")(runs.predict)
app.command("export")(export.export)
app.command("store")(models.store)
app.add_typer(models.app, name="models")
app.command("serve")(serve.serve)
app.command("tensorboard")(export.tensorboard)
app.command("help")(help_cmd.help_topic)
app.add_typer(cache.app, name="cache")


# Typer's own root options: VergeML never had them, so they bypass its translation.
COMPLETION_OPTIONS = ("--install-completion", "--show-completion")


def run(argv: list[str] | None = None) -> None:
    """``ml ARGV``: translated, parsed by Typer, run; errors told as one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    global _debug
    if "--debug" in argv:  # accepted anywhere, also after the command
        argv.remove("--debug")
        _debug = True
    try:
        # VergeML's forms (ml --samples-dir=DIR @NAME predict FILE, ml list acc -gt 0.8):
        # the settings they give are in the environment while the command runs.
        if argv[:1] and argv[0] in COMPLETION_OPTIONS:
            translated = vergeml_args.Translated(argv)
        else:
            translated = vergeml_args.translate(argv)
        for note in translated.notes:
            print(f"ml: note: {note}", file=sys.stderr)
        remember_arguments(translated.argv)
        with vergeml_args.environment(translated.env):
            # Not standalone: click's refusals of the command line come here, to be told
            # as one line like vml's own, and an Exit's code comes back (commands return None).
            # A completion request (_ML_COMPLETE set) is answered and exits in there,
            # through vml's shell classes (complete.py), which typer's must not replace.
            command = typer.main.get_command(app)
            complete.use_vml_completion()
            code = command.main(args=translated.argv, prog_name="ml", standalone_mode=False)
        if code:
            sys.exit(code)
    except clicks.NoArgsIsHelpError as exc:  # plain ml (or ml cache): the help
        exc.show()
        sys.exit(exc.exit_code)
    except clicks.ClickException as exc:
        print(f"ml: error: {click_error(exc, argv)}", file=sys.stderr)
        sys.exit(int(ExitCode.USAGE))
    except typer.Abort:  # end of input at a prompt
        print("ml: aborted", file=sys.stderr)
        sys.exit(int(ExitCode.FAILURE))
    except VmlError as exc:
        if _debug or os.environ.get("VML_DEBUG"):
            traceback.print_exc()
        print(f"ml: error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        print("ml: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # a bug or an environment problem: one line unless --debug
        if _debug or os.environ.get("VML_DEBUG"):
            raise
        print(f"ml: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(int(ExitCode.FAILURE))


def click_error(exc: Exception, argv: list[str]) -> str:
    """click's refusal of ``ml ARGV`` (an unknown option, a value of the wrong type, a
    missing argument) as one line: what was wrong, then where the usage is."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else command_path(argv)
    usage = f"{command} --help"
    if isinstance(exc, clicks.BadOptionUsage) and "requires" in exc.message:
        return f"{exc.option_name} needs a value ({usage})"
    if isinstance(exc, clicks.NoSuchOption):
        close = " or ".join(p for p in exc.possibilities or () if p != "--help")
        hint = f"did you mean {close}? {usage} lists them" if close else f"{usage} lists them"
        return f"{command} has no option {exc.option_name} ({hint})"
    param = getattr(exc, "param", None)
    if param is not None:
        name = (param.name or "").upper()
        if param.param_type_name == "option":  # as typed: --top, -k or --labels
            typed = (o for o in param.opts if any(a == o or a.startswith(f"{o}=") for a in argv))
            name = next(typed, param.opts[0])
        if isinstance(exc, clicks.MissingParameter):
            return f"{command} needs {name} ({usage})"
        return f"invalid value for {name}: {exc.message.rstrip('.')} ({usage})"
    message = exc.format_message().rstrip(".").replace(". Did you mean", ", did you mean")
    return f"{message[:1].lower()}{message[1:]} ({usage})"


def command_path(argv: list[str]) -> str:
    """``ml list`` or ``ml cache prune``: the command ``argv`` names (click's parser
    errors do not say)."""
    path, command = ["ml"], typer.main.get_command(app)
    words = [word for word in argv if not word.startswith("-")]
    while words and words[0] in getattr(command, "commands", {}):
        command = command.commands[words[0]]
        path.append(words.pop(0))
    return " ".join(path)
