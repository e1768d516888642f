"""``ml train``: train the project's model with hyperparameters from the command line."""

from __future__ import annotations

import sys

import typer

from vml import api
from vml.errors import ExitCode


def train(
    ctx: typer.Context,
    name: str | None = typer.Option(
        None, "--name", help="Name of the run (default: a generated adjective-noun)."
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Train in a background worker; print the run's name and return."
    ),
) -> None:
    """Train the project's model and record the run.

    Hyperparameters follow as --key=value or --key value, e.g.
    `ml train --learning-rate=0.005 --epochs=50`; `ml help train` lists them.
    """
    if detach:
        run = api.Project().start(ctx.args, name=name)
        print(run.name)
        print(f"training {run.name} in the background: ml logs {run.name} --follow", file=sys.stderr)
        return
    report(api.Project().train_in_process(ctx.args, name=name))


def report(result) -> None:
    """Print how a run ended (stdout) and exit with the matching code."""
    if result.status == "finished":
        print(f"{result.name}: finished, {result.summary()}")
        return
    best = (
        f", best {result.monitor} {result.best_metric:.4f} at epoch {result.best_epoch} kept in best.pt"
        if result.best_epoch
        else ""
    )
    if result.status == "failed":
        print(f"{result.name}: failed: {result.error}{best}")
        sys.exit(int(ExitCode.FAILURE))
    print(f"{result.name}: {result.status}{best}")
    sys.exit(int(ExitCode.INTERRUPTED))
