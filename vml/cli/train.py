"""``ml train``: train the project's model with hyperparameters from the command line."""

from __future__ import annotations

import sys
import time

import typer

from vml import api
from vml.cli import sweep as cli_sweep
from vml.cli.options import command_text
from vml.errors import ExitCode, UsageError

FOLLOW_SECONDS = 0.5


def train(
    ctx: typer.Context,
    name: str | None = typer.Option(
        None, "--name", help="Name of the run (default: a generated adjective-noun)."
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Train in the background; print the run's (or sweep's) name and return."
    ),
    draws: int | None = cli_sweep.RANDOM,
    sweep_seed: int | None = cli_sweep.SWEEP_SEED,
    parallel: int | None = cli_sweep.PARALLEL,
    gpus_per_run: int | None = cli_sweep.GPUS_PER_RUN,
    cpus_per_run: int | None = cli_sweep.CPUS_PER_RUN,
    needed: bool = cli_sweep.NEEDED,
    gpus: int = typer.Option(
        1,
        "--gpus",
        help="Train one run on N GPUs with DistributedDataParallel (torchrun); N CPU processes without CUDA.",
    ),
) -> None:
    """Train the project's model and record the run.

    Hyperparameters follow as --key=value or --key value, e.g.
    `ml train --learning-rate=0.005 --epochs=50`; `ml help train` lists them.
    Several values make a sweep: `--learning-rate=0.001,0.01 --batch-size=32,64`
    queues 4 runs (see `ml help sweeps`).
    """
    project = api.Project()
    queue_options = (draws, parallel, gpus_per_run, cpus_per_run)
    if needed or any(option is not None for option in queue_options) or project.is_sweep(ctx.args):
        runs = project.plan_sweep(ctx.args, draws, sweep_seed)
        if name is not None:
            raise UsageError(
                f"--name {name} names one run; the {len(runs)} runs of a sweep get generated names"
            )
        cli_sweep.run_queue(
            project,
            runs,
            command_text(),
            detach=detach,
            parallel=parallel,
            gpus_per_run=gpus_per_run,
            cpus_per_run=cpus_per_run,
            needed=needed,
        )
        return
    if detach or gpus != 1:
        run = project.start(ctx.args, name=name, gpus=gpus)
        if detach:
            print(run.name)
            print(f"training {run.name} in the background: ml logs {run.name} --follow", file=sys.stderr)
            return
        follow(run)
        return
    report(project.train_in_process(ctx.args, name=name))


def follow(run: api.Run) -> None:
    """Print a background run's log as it grows until it ends (Ctrl-C cancels it),
    then how it ended, with the matching exit code."""
    offset = 0
    try:
        while True:
            ended = run.status() not in api.ACTIVE_STATES  # read before the log: no line is missed
            text, offset = run.log_since(offset, partial=ended)  # whole lines while it runs
            for line in text.splitlines():
                print(line, file=sys.stderr, flush=True)
            if ended:
                break
            time.sleep(FOLLOW_SECONDS)
    except KeyboardInterrupt:
        print(f"{run.name}: {run.cancel()}")
        sys.exit(int(ExitCode.INTERRUPTED))
    info = run.info()
    if info["status"] == "finished":
        print(f"{run.name}: finished, test_acc {info['test_acc']:.4f}, test_loss {info['test_loss']:.4f}")
        return
    print(f"{run.name}: {info['status']}" + (f": {info['error']}" if info["error"] else ""))
    sys.exit(int(ExitCode.FAILURE if info["status"] == "failed" else ExitCode.INTERRUPTED))


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
