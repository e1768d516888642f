"""``ml tune``: start, resume or show a study (an adaptive search, see ``vml.launch.tune``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import TABLE_JSON, check_format, command_text, format_option
from vml.cli.sweep import CPUS_PER_RUN, GPUS_PER_RUN, PARALLEL
from vml.errors import ExitCode, UsageError

CHART_SIZE = (60, 12)  # the best-so-far chart of ml tune show, in characters


def tune(
    ctx: typer.Context,
    words: list[str] | None = typer.Argument(
        None,
        metavar="[show STUDY | RUNS_FILE]",
        help="show STUDY prints a study; a runs file with a tune: block starts one.",
    ),
    trials: int | None = typer.Option(None, "--trials", "-n", help="Trials in the study (default 20)."),
    sampler: str | None = typer.Option(None, "--sampler", help="tpe (default), random, grid or cmaes."),
    pruner: str | None = typer.Option(None, "--pruner", help="median (default), asha, hyperband or none."),
    timeout: str | None = typer.Option(
        None, "--timeout", help="Start no trial after this long (90s, 20m, 2h)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampler (default: a new one)."),
    name: str | None = typer.Option(None, "--name", help="The study's name (default: st-XXXXXX)."),
    resume: str | None = typer.Option(
        None, "--resume", help="Continue study STUDY from what its trials recorded."
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run the study in the background; print its id."
    ),
    parallel: int | None = PARALLEL,
    gpus_per_run: int | None = GPUS_PER_RUN,
    cpus_per_run: int | None = CPUS_PER_RUN,
    backend: str | None = typer.Option(
        None, "--backend", help="local (this machine) or ray (a Ray cluster)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="The Ray cluster (auto, or ray://HOST:10001)."
    ),
    fmt: str = format_option(TABLE_JSON),
) -> None:
    """Search hyperparameters adaptively (Optuna) and stop hopeless trials early."""
    # Unknown options (the hyperparameters) arrive among the words, in the order typed.
    words = [*(words or []), *ctx.args]
    project = api.Project()
    if words[:1] == ["show"]:
        if len(words) < 2:
            raise UsageError(
                "ml tune show needs a study (e.g. ml tune show st-1a2b3c; ml list --columns sweep)"
            )
        check_format(fmt, TABLE_JSON)
        show(project.study(words[1]), fmt)
        return
    settings: dict[str, Any] = {}
    if words and not words[0].startswith("--"):
        if len(words) > 1:
            raise UsageError(
                f"{words[1]}: put the search in the runs file's tune: block (or leave the file out)"
            )
        given = {"trials": trials, "sampler": sampler, "pruner": pruner, "timeout": timeout, "seed": seed}
        settings = project.plan_tune_file(Path(words[0]), **given)
        words = []
    args = words
    if resume is not None:
        if args:
            raise UsageError(
                f"{args[0]}: --resume {resume} continues the recorded search (leave {args[0]} out)"
            )
        project.resume_study(resume, trials, timeout)
        _run(project, resume, detach)
        return
    spec = settings.pop("spec", None) or project.plan_study(
        args,
        trials=trials if trials is not None else 20,
        sampler=sampler or "tpe",
        pruner=pruner or "median",
        timeout=timeout,
        seed=seed,
        source=command_text(),
    )
    study = project.create_study(
        spec,
        name or settings.get("name"),
        parallel=parallel if parallel is not None else settings.get("parallel"),
        gpus_per_run=gpus_per_run if gpus_per_run is not None else settings.get("gpus_per_run"),
        cpus_per_run=cpus_per_run if cpus_per_run is not None else settings.get("cpus_per_run"),
        backend=backend or settings.get("backend", "local"),
        address=address or settings.get("address"),
    )
    _run(project, study, detach)


def _run(project: api.Project, study: str, detach: bool) -> None:
    """Drive the study here until it ends (Ctrl-C stops it), or in the background."""
    info = project.study(study)
    print(
        f"study {study}: {info['target_trials']} trials, {info['sampler']} sampler, {info['pruner']} pruner,"
        f" {info['direction']} {info['monitor']}",
        file=sys.stderr,
    )
    if detach:
        project.start_sweep(study)
        print(study)
        print(
            f"running in the background: ml tune show {study}, ml list --sweep {study}, ml cancel --sweep {study}",
            file=sys.stderr,
        )
        return

    def say(name: str, event: str) -> None:
        print(f"{name}: {event}", file=sys.stderr, flush=True)

    try:
        project.run_sweep(
            study,
            say,
            lambda: print(f"study {study}: stopping its trials (Ctrl-C)", file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print(f"study {study}: stopped; ml tune --resume {study} continues it")
        sys.exit(int(ExitCode.INTERRUPTED))
    info = project.study(study)
    counts = ", ".join(f"{n} {state}" for state, n in info["counts"].items())
    print(f"study {study}: {len(info['trials'])} trials ({counts}), {info['epochs_trained']} epochs trained")
    best = info["best"]
    if best is None:
        print(f"no trial finished; ml tune show {study} lists them")
        sys.exit(int(ExitCode.FAILURE))
    print(f"best: {best['instance']} (trial {best['trial']}), {info['monitor']} {best['value']:.4f}")
    print(f"  {best['command']}")


def show(info: dict[str, Any], fmt: str) -> None:
    """Print a study: its best trial, importances, best-so-far chart and trials."""
    if fmt == "json":
        render.print_json(info)
        return
    counts = ", ".join(f"{n} {state}" for state, n in info["counts"].items()) or "no trials yet"
    print(
        f"study {info['study']} ({info['state']}): {info['sampler']} sampler, {info['pruner']} pruner,"
        f" {info['direction']} {info['monitor']}"
    )
    print(
        f"trials: {len(info['trials'])} of {info['target_trials']} ({counts}), {info['epochs_trained']} epochs trained"
    )
    best = info["best"]
    if best is not None:
        print(f"best: {best['instance']} (trial {best['trial']}), {info['monitor']} {best['value']:.4f}")
        print(f"  {best['command']}")
    if info["importance"]:
        print("importance:")
        width = max(len(key) for key in info["importance"])
        for key, share in info["importance"].items():
            print(f"  {key:<{width}}  {'█' * max(1, round(share * 30))} {share:.2f}")
    if len(info["best_so_far"]) > 1:
        print(f"best {info['monitor']} so far:")
        print(_chart(info["best_so_far"], info["monitor"]))
    keys = list(info["space"])
    rows = [
        [
            str(t["trial"]),
            t["instance"],
            t["state"],
            "-" if t["value"] is None else f"{t['value']:.4f}",
            str(t["epochs"]),
            *(_cell(t["hyperparameters"].get(key)) for key in keys),
            t["reason"] or "",
        ]
        for t in info["trials"]
    ]
    if rows:
        render.print_table(
            ["trial", "instance", "state", info["monitor"], "epochs", *keys, "pruned because"], rows
        )


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _chart(points: list[list[float]], monitor: str) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plot([p[0] for p in points], [p[1] for p in points], marker="braille")
    plt.plotsize(*CHART_SIZE)
    plt.xlabel("trial")
    chart = plt.uncolorize(plt.build())
    plt.clear_figure()
    return chart
