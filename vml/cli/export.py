"""``ml export`` (a model, TensorBoard or MLflow) and ``ml tensorboard``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vml import api
from vml.cli.options import RUNS_HELP, check_format, choices
from vml.errors import UsageError

EXPORT_FORMATS = ("model", "tensorboard", "mlflow")


def export(
    args: list[str] = typer.Argument(
        ...,
        metavar="RUN... [DIR]",
        help="model: a run and a new directory (ml export RUN DIR); tensorboard, mlflow: the runs "
        "(names, @name, unique prefixes, @last).",
    ),
    fmt: str = typer.Option(
        "model",
        "--format",
        "-f",
        help="model (a folder usable without vml), tensorboard or mlflow.",
        autocompletion=choices(EXPORT_FORMATS),
    ),
    logdir: Path | None = typer.Option(
        None, "--logdir", metavar="DIR", help="tensorboard: write a folder per run into DIR."
    ),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        metavar="URI",
        envvar="MLFLOW_TRACKING_URI",
        help="mlflow: where to export (sqlite:///mlflow.db, http://HOST:5000, a database URI).",
    ),
    experiment: str | None = typer.Option(
        None,
        "--experiment",
        metavar="NAME",
        help="mlflow: the experiment (made when missing; default: the project folder's name).",
    ),
) -> None:
    """Export a run's best model to use without vml (weights, config, labels, a torch.export
    program), or runs' metrics and hyperparameters to TensorBoard or MLflow."""
    check_format(fmt, EXPORT_FORMATS)
    _check_options(fmt, logdir=logdir, experiment=experiment)
    project = api.Project()
    if fmt == "model":
        if len(args) != 2:
            raise UsageError(
                f"ml export RUN DIR takes a run and a new directory (got {len(args)} argument"
                f"{'s' * (len(args) != 1)}; --format tensorboard or mlflow export several runs)"
            )
        run, directory = args
        for path in project.export(run, directory):
            print(path)
        print(f"load it with: torch.export.load('{directory}/model.pt2').module()", file=sys.stderr)
    elif fmt == "tensorboard":
        if logdir is None:
            raise UsageError(
                "--format tensorboard needs --logdir DIR (the folder to write; ml tensorboard picks one)"
            )
        for run in project.export_tensorboard(args, logdir):
            print(
                f"{run['instance']}: {run['scalars']} scalars, {run['hyperparameters']} hyperparameters in {run['folder']}"
            )
        print(
            f"view them: ml tensorboard --logdir {logdir} (or tensorboard --logdir {logdir})", file=sys.stderr
        )
    else:
        if not tracking_uri:
            raise UsageError(
                "--format mlflow needs --tracking-uri URI (or MLFLOW_TRACKING_URI), e.g. sqlite:///mlflow.db"
            )
        for run in project.export_mlflow(args, tracking_uri, experiment):
            logged = "".join(f", {name}" for name in run["artifacts"])
            again = f"; replaced {run['replaced']} earlier export" if run["replaced"] else ""
            print(
                f"{run['instance']}: MLflow run {run['run_id']} in experiment {run['experiment']!r} "
                f"({run['params']} params, {run['metrics']} metric points{logged}{again})"
            )
        print(f"view them: mlflow ui --backend-store-uri {tracking_uri}", file=sys.stderr)


def _check_options(fmt: str, logdir: Path | None, experiment: str | None) -> None:
    """Refuse an option the format does not read (--tracking-uri may come from the
    environment, so only its absence is checked, by the mlflow export)."""
    if logdir is not None and fmt != "tensorboard":
        raise UsageError(f"--logdir is for --format tensorboard (not {fmt})")
    if experiment is not None and fmt != "mlflow":
        raise UsageError(f"--experiment is for --format mlflow (not {fmt})")


def tensorboard(
    runs: list[str] | None = typer.Argument(None, help=f"{RUNS_HELP} Default: every run."),
    logdir: Path | None = typer.Option(
        None,
        "--logdir",
        metavar="DIR",
        help="Export into DIR (default: trainings/.tensorboard, holding just these runs).",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="The address to listen on (0.0.0.0: every interface)."
    ),
    port: int = typer.Option(6006, "--port", help="The port to listen on (0: a free one)."),
) -> None:
    """Export runs for TensorBoard and run it on them (on loopback) until Ctrl-C."""
    api.Project().tensorboard(runs or None, logdir, host=host, port=port)


__all__ = ["export", "tensorboard"]
