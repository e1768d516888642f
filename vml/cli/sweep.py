"""Queues from the command line: what ``ml train`` does with a sweep and ``ml queue``
with a sweep or a runs file. The runs are recorded, then run K at a time, here (with
progress, until every run ended) or by a scheduler in the background."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from vml import api
from vml.cli.options import command_text
from vml.errors import ExitCode, UsageError

PARALLEL = typer.Option(
    None, "--parallel", "-j", help="Runs at once (default: one per GPU set, else CPU cores / --cpus-per-run)."
)
GPUS_PER_RUN = typer.Option(
    None,
    "--gpus-per-run",
    help="GPUs pinned to each run (CUDA_VISIBLE_DEVICES; default 1 when there are GPUs, 0 means the CPU).",
)
CPUS_PER_RUN = typer.Option(
    None, "--cpus-per-run", help="CPU threads of each run (default: cores / parallel)."
)
NEEDED = typer.Option(
    False, "--needed", help="Skip runs whose hyperparameters and data match a finished run."
)
RANDOM = typer.Option(
    None, "--random", help="Draw N runs from the swept values and ranges (LOW:HIGH, LOW:HIGH:log)."
)
SWEEP_SEED = typer.Option(None, "--sweep-seed", help="Seed of the --random draws (default: a new one).")


def run_queue(project: api.Project, runs: list, source: str, *, detach: bool = False, **settings: Any) -> None:
    """Queue ``runs`` as one sweep (``settings``: see ``Project.queue``) and run it
    here, or hand it to a scheduler in the background."""
    queued = project.queue(runs, source, **settings)
    for what, match in queued.skipped:
        print(f"skipped {what}: the same as finished run {match} (--needed)", file=sys.stderr)
    count = len(queued.names)
    if queued.sweep is None:
        print("nothing to run: each run matches a finished one", file=sys.stderr)
        return
    print(
        f"sweep {queued.sweep}: {count} run(s) queued, {queued.parallel} at a time"
        f" ({queued.cpus_per_run} CPU thread(s) each)",
        file=sys.stderr,
    )
    if detach:
        project.start_sweep(queued.sweep)
        print(queued.sweep)
        print(
            f"running in the background: ml list --sweep {queued.sweep}, ml cancel --sweep {queued.sweep}",
            file=sys.stderr,
        )
        return
    ended: list[str] = []

    def say(name: str, event: str) -> None:
        if not event.startswith(("started", "note:")):
            ended.append(name)
        swept = f" ({queued.flags[name]})" if queued.flags.get(name) and event.startswith("started") else ""
        print(f"[{len(ended)}/{count} ended] {name}: {event}{swept}", file=sys.stderr, flush=True)

    try:
        statuses = project.run_sweep(
            queued.sweep,
            say,
            lambda: print(f"sweep {queued.sweep}: cancelling its runs (Ctrl-C)", file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print(f"sweep {queued.sweep}: cancelled; ml list --sweep {queued.sweep} shows how far it got")
        sys.exit(int(ExitCode.INTERRUPTED))
    finished = sum(status == "finished" for status in statuses.values())
    print(
        f"sweep {queued.sweep}: {finished} of {count} finished; ml list --sweep {queued.sweep} compares them"
    )
    if finished < count:
        sys.exit(int(ExitCode.FAILURE))


def queue(
    ctx: typer.Context,
    runs_file: Path | None = typer.Argument(
        None,
        help="A runs file (YAML; see ml help sweeps). Without one, the hyperparameters that follow make the sweep.",
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run the queue in the background; print its sweep id."
    ),
    draws: int | None = RANDOM,
    sweep_seed: int | None = SWEEP_SEED,
    parallel: int | None = PARALLEL,
    gpus_per_run: int | None = GPUS_PER_RUN,
    cpus_per_run: int | None = CPUS_PER_RUN,
    needed: bool = NEEDED,
    backend: str | None = typer.Option(
        None, "--backend", help="local (this machine) or ray (a Ray cluster)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="The Ray cluster (auto, or ray://HOST:10001); default: a local Ray instance."
    ),
) -> None:
    """Queue many runs, from a runs file or a sweep of hyperparameters, and run them K at a time."""
    project = api.Project()
    args = list(ctx.args)
    if runs_file is not None and str(runs_file).startswith("--"):  # a hyperparameter, not a file
        args, runs_file = [str(runs_file), *args], None
    if runs_file is None:
        planned = project.plan_sweep(args, draws, sweep_seed)
        settings: dict = {}
        source = command_text()
    else:
        if ctx.args:
            raise UsageError(
                f"{ctx.args[0]}: put hyperparameters in the runs file {runs_file} (or leave the file out)"
            )
        planned, settings = project.plan_runs_file(runs_file)
        source = str(runs_file)
    run_queue(
        project,
        planned,
        source,
        detach=detach,
        parallel=parallel if parallel is not None else settings.get("parallel"),
        gpus_per_run=gpus_per_run if gpus_per_run is not None else settings.get("gpus_per_run"),
        cpus_per_run=cpus_per_run if cpus_per_run is not None else settings.get("cpus_per_run"),
        needed=needed,
        backend=backend or settings.get("backend", "local"),
        address=address or settings.get("address"),
    )
