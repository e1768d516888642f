"""`ml tune` (issue 13): quality per compute, overhead against raw Optuna, pruning latency.

Quality per compute against a full grid, overhead against the same study written as
the obvious Optuna script, and how fast a pruned trial stops.

Two projects: the default template (digits, 1,797 rows, 10% validation) and a copy of
it whose ``vergeml.yaml`` reads a seeded synthetic CSV (``--rows`` rows, default
10,000: 5 classes, each a union of 4 Gaussian blobs in 8 mixed informative dimensions,
16 pure-noise columns, 5% of the labels replaced at random; 20% validation), where the
learning rate, the hidden size and the dropout all move val_acc. In each project:

1. The grid: ``ml queue`` over 3 learning rates x 3 hidden sizes x 3 dropouts,
   ``--epochs`` each (``--grid-parallel`` at a time). Its best val_acc (the monitored
   metric: each run's best epoch) and the epochs it trained.
2. For each sampler seed (``--seeds``): ``ml tune --trials 27 --sampler tpe --pruner
   median --parallel 1`` over the same ranges (``--space ranges``:
   ``--learning-rate=1e-3:1e-1:log --hidden-size=32:128:log --dropout=0:0.4``, or
   ``--space lists``: the grid's values), and beside it the same study as the obvious
   Optuna script (``raw_study`` below): ``optuna.create_study`` with the TPE sampler
   and median pruner vml uses at --parallel 1 (6 random startup trials of 27, pruning
   after 2 finished trials), an objective that trains vml's MLP on the same prepared
   data with a plain torch loop, reports val_acc each epoch and raises
   ``optuna.TrialPruned`` when ``trial.should_prune()``. Both are whole commands,
   timed from ``Popen`` to exit, in turn (vml first for odd seeds, raw first for even).
   With one thread each (``--threads``), both train the same arithmetic from the same
   seeds, so the two studies usually sample the same points and get the same values;
   the script reports how many of the trials matched.
3. Pruning latency, from the store (``trainings/vml.db``) of every ``ml tune`` above:
   for each pruned run, its ``ended_at`` minus the ``time`` of its val_acc row of the
   epoch named in its ``prune_reason``, and minus the time of its last val_acc row.

``--pruner asha`` (or ``none``) runs both studies with that pruner instead, for comparison.

Targets (issue 13): the study's best within 0.005 val_acc of the grid's with at most
35% of its epochs (medians over the seeds); vml/raw wall time at most 1.15; a pruned
trial stopped within 1 s of its epoch's end.

    .venv/bin/python benchmarks/bench_tune.py [--seeds 1,2,3] [--trials 27] [--epochs 20] [--rows 10000]
        [--threads 1] [--grid-parallel 2] [--space ranges|lists] [--pruner median|asha|none]
        [--data digits,synthetic] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from report import Line, child_env, finish, versions

RESULTS = Path(__file__).resolve().parent / "results" / "tune.json"
RANDOM_SEED = 42  # the runs' own seed (split, weights, shuffling): the template's
CLASSES, CLUSTERS_PER_CLASS, INFORMATIVE, NOISE_COLUMNS = 5, 4, 8, 16
SEPARATION, LABEL_NOISE, DATA_SEED = 1.5, 0.05, 7
# The search space: the grid's values, and the ranges they span (flags in this order,
# the order the raw script suggests them in, so a seeded TPE draws the same points).
GRID = {
    "learning-rate": ("0.001", "0.01", "0.1"),
    "hidden-size": ("32", "64", "128"),
    "dropout": ("0", "0.2", "0.4"),
}
RANGES = {"learning-rate": "1e-3:1e-1:log", "hidden-size": "32:128:log", "dropout": "0:0.4"}
GAP_TARGET, EPOCH_SHARE_TARGET, RATIO_TARGET, LATENCY_TARGET = 0.005, 0.35, 1.15, 1.0


# --- the commands -----------------------------------------------------------------------


ENV: dict[str, str] = {}  # set by main()


def run_timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run a command to the end: its wall time, the epoch time it started at, its
    stdout. A failure stops the benchmark."""
    started_at = time.time()
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=ENV or None)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:6])} ... failed ({result.returncode}): {result.stderr[-3000:]}")
    return elapsed, started_at, result.stdout


def ml(*args: str, cwd: Path) -> tuple[float, float, str]:
    return run_timed([sys.executable, "-m", "vml", *args], cwd)


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# --- the projects -----------------------------------------------------------------------


def make_synthetic_project(target: Path, rows: int) -> Path:
    """A copy of the default template reading ``synthetic.csv``: ``rows`` seeded rows
    of a noisy nonlinear 5-class problem (see the module docstring), 20% validation."""
    import numpy as np

    from vml.api import create_project

    create_project(target)
    rng = np.random.default_rng(DATA_SEED)
    centers = rng.choice([-SEPARATION, SEPARATION], size=(CLASSES * CLUSTERS_PER_CLASS, INFORMATIVE))
    blob = rng.integers(0, len(centers), rows)
    labels = blob % CLASSES
    informative = (centers[blob] + rng.normal(size=(rows, INFORMATIVE))) @ rng.normal(
        size=(INFORMATIVE, INFORMATIVE)
    )
    x = np.hstack([informative, rng.normal(size=(rows, NOISE_COLUMNS))]).round(4)
    flip = rng.random(rows) < LABEL_NOISE
    labels[flip] = rng.integers(0, CLASSES, int(flip.sum()))
    columns = x.shape[1]
    np.savetxt(
        target / "data" / "synthetic.csv",
        np.column_stack([x, labels]),
        delimiter=",",
        fmt=["%.4f"] * columns + ["%d"],
        header=",".join([*(f"f{i}" for i in range(columns)), "label"]),
        comments="",
    )
    (target / "data" / "digits.csv").unlink()
    yaml_file = target / "vergeml.yaml"
    text = yaml_file.read_text()
    for old in ("file: digits.csv", "val-split: 10%"):
        if old not in text:
            raise RuntimeError(f"the default template no longer says {old!r}; update this benchmark")
    text = text.replace("file: digits.csv", "file: synthetic.csv").replace("val-split: 10%", "val-split: 20%")
    yaml_file.write_text(f"# bench_tune.py: {rows} synthetic rows (see its docstring)\n" + text)
    return target


def make_project(root: Path, data: str, rows: int) -> Path:
    """The project for ``data``, its data cache made (as every run reads it)."""
    from vml.api import create_project
    from vml.config import load_project
    from vml.data.prepare import prepare_data

    project = create_project(root / data) if data == "digits" else make_synthetic_project(root / data, rows)
    prepare_data(load_project(project), RANDOM_SEED)
    return project


def space_flags(space: str) -> list[str]:
    values = RANGES if space == "ranges" else {k: ",".join(v) for k, v in GRID.items()}
    return [f"--{key}={text}" for key, text in values.items()]


# --- 1. the grid ------------------------------------------------------------------------


def run_grid(project: Path, epochs: int, parallel: int, threads: int) -> dict[str, Any]:
    flags = [f"--{key}={','.join(values)}" for key, values in GRID.items()]
    wall, _, out = ml(
        "queue", *flags, f"--epochs={epochs}", "--device=cpu", "--parallel", str(parallel),
        "--cpus-per-run", str(threads), cwd=project,
    )  # fmt: skip
    found = re.search(r"sweep (\S+):", out)
    if found is None:
        raise SystemExit(f"ml queue printed no sweep id: {out!r}")
    sweep = found[1]
    _, _, listed = ml("list", "--sweep", sweep, "--format", "json", cwd=project)
    runs = json.loads(listed)
    if len(runs) != 27 or any(r["status"] != "finished" for r in runs):
        raise SystemExit(f"grid {sweep}: expected 27 finished runs, got {[r['status'] for r in runs]}")
    best = max(runs, key=lambda r: r["best_metric"])
    keys = ("learning_rate", "hidden_size", "dropout")
    return {
        "sweep": sweep,
        "wall_s": wall,
        "best": best["best_metric"],
        "best_hyperparameters": {k: best["hyperparameters"][k] for k in keys},
        "epochs": sum(r["epoch"] for r in runs),
        "runs": [
            {"value": r["best_metric"], "epoch": r["epoch"], **{k: r["hyperparameters"][k] for k in keys}}
            for r in runs
        ],
    }


# --- 2. ml tune and the raw Optuna study ------------------------------------------------


def run_tune(
    project: Path, data: str, seed: int, trials: int, epochs: int, space: str, threads: int, pruner: str
) -> dict[str, Any]:
    """``ml tune`` at --parallel 1, whole command; its study as ``ml tune show`` gives
    it, and the spans of its trials from the store."""
    from vml.store import RunStore

    name = f"bench-{data}-s{seed}"
    wall, started_at, _ = ml(
        "tune", *space_flags(space), f"--epochs={epochs}", "--device=cpu", "--trials", str(trials),
        "--sampler", "tpe", "--pruner", pruner, "--seed", str(seed), "--name", name,
        "--parallel", "1", "--cpus-per-run", str(threads), cwd=project,
    )  # fmt: skip
    _, _, shown = ml("tune", "show", name, "--format", "json", cwd=project)
    info = json.loads(shown)
    with RunStore(project / "trainings" / "vml.db") as store:
        rows = store.conn.execute(
            "select started_at, ended_at from runs where sweep = ? order by trial", [name]
        ).fetchall()
        (asked,) = store.conn.execute("select min(created_at) from runs where sweep = ?", [name]).fetchone()
        epoch_rows = store.conn.execute(
            "select r.id, r.status, r.started_at, r.ended_at, m.time from runs r join metrics m on m.run_id = r.id"
            " where r.sweep = ? and m.key = r.monitor order by r.id, m.epoch",
            [name],
        ).fetchall()
    starts, ends = [seconds(s) for s, _ in rows], [seconds(e) for _, e in rows]
    # Inside each trial, from its val_acc rows: its start to its first epoch's end, one
    # epoch's end to the next (training, validation and vml's per-epoch work), and a
    # finished trial's last epoch to its end (the test split, best.pt read back).
    by_run: dict[int, list[Any]] = {}
    for run_id, status, run_start, run_end, stamp in epoch_rows:
        by_run.setdefault(run_id, [status, seconds(run_start), seconds(run_end), []])[3].append(
            seconds(stamp)
        )
    firsts = [times[0] - start for _, start, _, times in by_run.values()]
    intervals = [b - a for *_, times in by_run.values() for a, b in zip(times, times[1:], strict=False)]
    lasts = [end - times[-1] for status, _, end, times in by_run.values() if status == "finished"]
    # At --parallel 1, from one trial's end to the next one's start: the driver noticing
    # the end, telling and asking, recording the run, the fork and the worker claiming it.
    gaps = [starts[i] - ends[i - 1] for i in range(1, len(rows))]
    return {
        "study": name,
        "wall_s": wall,
        "to_first_trial_s": starts[0] - started_at,
        # Of which: the driver (the CLI, Optuna, the study recorded, the first ask), then
        # the warm process (torch, torch._dynamo, vml's training code) and the fork.
        "to_first_ask_s": seconds(asked) - started_at,
        "first_ask_to_start_s": starts[0] - seconds(asked),
        "span_s": max(ends) - min(starts),
        "trial_s": sum(e - s for s, e in zip(starts, ends, strict=True)),
        "between_trials_ms": statistics.median(gaps) * 1000 if gaps else None,
        "to_first_epoch_ms": statistics.median(firsts) * 1000,
        "epoch_ms": statistics.median(intervals) * 1000 if intervals else None,
        "after_last_epoch_ms": statistics.median(lasts) * 1000 if lasts else None,
        "best": info["best"]["value"] if info["best"] else None,
        "best_hyperparameters": info["best"]["hyperparameters"] if info["best"] else None,
        "epochs": info["epochs_trained"],
        "counts": info["counts"],
        "trials": [
            {
                "trial": t["trial"],
                "state": t["state"],
                "value": t["value"],
                "epochs": t["epochs"],
                **t["hyperparameters"],
            }
            for t in info["trials"]
        ],
    }


def run_raw(
    project: Path, seed: int, trials: int, epochs: int, space: str, threads: int, pruner: str
) -> dict[str, Any]:
    """The raw Optuna study as a whole command: this script with ``--raw-child``."""
    spec = {
        "root": str(project),
        "seed": seed,
        "trials": trials,
        "epochs": epochs,
        "space": space,
        "threads": threads,
        "pruner": pruner,
    }
    wall, _, out = run_timed([sys.executable, __file__, "--raw-child", json.dumps(spec)], project)
    return json.loads(out.splitlines()[-1]) | {"wall_s": wall}


def raw_pruner(pruner: str, trials: int, epochs: int):
    """vml's pruner for a study of ``trials`` trials of at most ``epochs`` epochs, as
    vml/launch/tune.py's make_pruner builds it: median after max(1, min(5, trials // 10))
    finished trials; successive halving (ASHA) from epoch 1, keeping the best third."""
    import optuna

    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, trials // 10)))
    if pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def raw_study(
    root: str, seed: int, trials: int, epochs: int, space: str, threads: int, pruner: str
) -> dict[str, Any]:
    """The same study as the obvious Optuna script: vml's MLP on vml's prepared data
    (the cache entry the runs read), a plain torch loop, val_acc reported each epoch.
    Everything else is as in ``ml train``'s defaults: Adam, batch 64, the run's seed
    before the weights are drawn and for the shuffling, 1 hidden layer, on the CPU."""
    start = time.perf_counter()
    import logging

    import numpy as np
    import optuna
    import torch
    from torch import nn

    from vml.config import load_project
    from vml.data.prepare import prepare_data
    from vml.models import get_model

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(logging.WARNING)
    data = prepare_data(load_project(Path(root)), RANDOM_SEED)
    x, y = (torch.from_numpy(np.array(data.x("train"))), torch.from_numpy(np.array(data.y("train"))))
    val_x, val_y = torch.from_numpy(np.array(data.x("val"))), torch.from_numpy(np.array(data.y("val")))
    build = get_model("mlp").build
    epochs_trained = 0
    epoch_s: list[float] = []  # each epoch's training and validation

    def suggest(trial: optuna.Trial) -> tuple[float, int, float]:
        if space == "ranges":
            return (
                trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
                trial.suggest_int("hidden_size", 32, 128, log=True),
                trial.suggest_float("dropout", 0.0, 0.4),
            )
        return (
            trial.suggest_categorical("learning_rate", [0.001, 0.01, 0.1]),
            trial.suggest_categorical("hidden_size", [32, 64, 128]),
            trial.suggest_categorical("dropout", [0.0, 0.2, 0.4]),
        )

    @torch.no_grad()
    def val_acc(model: nn.Module) -> float:
        model.eval()
        correct = 0
        for i in range(0, len(val_y), 1024):  # vml's evaluate batches by 1024
            correct += (model(val_x[i : i + 1024]).argmax(1) == val_y[i : i + 1024]).sum().item()
        return correct / len(val_y)

    def objective(trial: optuna.Trial) -> float:
        nonlocal epochs_trained
        lr, hidden, dropout = suggest(trial)
        # A vml trial trains with its values as text to 6 significant digits.
        lr, dropout = float(f"{lr:.6g}"), float(f"{dropout:.6g}")
        torch.manual_seed(RANDOM_SEED)
        model = build(tuple(x.shape[1:]), len(data.classes), hidden_size=hidden, dropout=dropout)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(RANDOM_SEED)
        best = 0.0
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(len(y), generator=generator)
            for i in range(0, len(y), 64):
                index = order[i : i + 64]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
            epochs_trained += 1
            acc = val_acc(model)
            epoch_s.append(time.perf_counter() - epoch_start)
            best = max(best, acc)
            trial.report(acc, epoch)
            trial.set_user_attr("epochs", epoch)
            if epoch < epochs and trial.should_prune():  # vml never prunes a trial's last epoch
                raise optuna.TrialPruned()
        return best

    # vml at --parallel 1 (vml/launch/tune.py): TPE with max(2, min(10, trials // 4))
    # random startup trials and no constant liar.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 4))),
        pruner=raw_pruner(pruner, trials, epochs),
    )
    ready = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    done = time.perf_counter()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "to_study_s": ready - start,
        "study_s": done - ready,
        "best": study.best_value if complete else None,
        "best_hyperparameters": study.best_params if complete else None,
        "epochs": epochs_trained,
        "epoch_ms": statistics.median(epoch_s) * 1000,
        # What a trial costs beyond its epochs: sampling, the model and optimizer built.
        "outside_epochs_ms": (done - ready - sum(epoch_s)) / trials * 1000,
        "trials": [
            {
                "trial": t.number,
                "state": "finished" if t.state == optuna.trial.TrialState.COMPLETE else t.state.name.lower(),
                "value": t.value,
                "epochs": t.user_attrs.get("epochs", 0),
                **t.params,
            }
            for t in study.trials
        ],
    }


def check_settings(project: Path, trials: int, epochs: int, space: str, pruner: str) -> None:
    """The raw script's sampler and pruner settings must be vml's: a study planned by
    vml, its sampler's startup trials and its pruner's settings."""
    from vml.api import Project
    from vml.launch.tune import new_study

    project_api = Project(project)
    spec = project_api.plan_study(
        [*space_flags(space), f"--epochs={epochs}"], trials=trials, pruner=pruner, seed=1
    )
    study = new_study(project_api.config, spec, parallel=1)
    raw = raw_pruner(pruner, trials, epochs)

    def settings(sampler: Any, pruned: Any) -> tuple[Any, ...]:
        public = {k: v for k, v in vars(pruned).items() if isinstance(v, (int, float, str, type(None)))}
        return (
            type(sampler).__name__,
            sampler._n_startup_trials,
            sampler._constant_liar,
            type(pruned).__name__,
            public,
        )

    found = settings(study.sampler, study.pruner)
    expected = (
        "TPESampler",
        max(2, min(10, trials // 4)),
        False,
        type(raw).__name__,
        settings(study.sampler, raw)[4],
    )
    if found != expected:
        raise SystemExit(f"vml's sampler/pruner settings changed: {found}, the raw study has {expected}")


def matched(vml_trials: list[dict[str, Any]], raw_trials: list[dict[str, Any]]) -> int:
    """How many trials, by number, sampled the same point and ended with the same value
    (or were both pruned)."""
    same = 0
    for a, b in zip(vml_trials, raw_trials, strict=False):
        point = all(
            abs(float(a[k]) - float(b[k])) <= 1e-6 * max(1.0, abs(float(b[k])))
            for k in ("learning_rate", "hidden_size", "dropout")
        )
        outcome = a["state"] == b["state"] and (
            a["state"] != "finished" or abs(a["value"] - b["value"]) < 1e-9
        )
        same += point and outcome
    return same


# --- 3. pruning latency -----------------------------------------------------------------


def prune_latencies(project: Path, study: str) -> list[dict[str, Any]]:
    """For each pruned run of ``study``: the seconds from the end of the epoch it was
    pruned at (its monitor row's time) and from its last recorded epoch to its end."""
    from vml.store import RunStore

    with RunStore(project / "trainings" / "vml.db") as store:
        pruned = store.conn.execute(
            "select id, name, prune_reason, ended_at, monitor from runs where sweep = ? and status = 'pruned'",
            [study],
        ).fetchall()
        found = []
        for run_id, name, reason, ended_at, monitor in pruned:
            epoch = int(re.match(r"pruned at epoch (\d+):", reason)[1])  # type: ignore[index]
            rows = dict(
                store.conn.execute(
                    "select epoch, time from metrics where run_id = ? and key = ?", [run_id, monitor]
                ).fetchall()
            )
            last = max(rows)
            found.append(
                {
                    "run": name,
                    "epoch": epoch,
                    "last_epoch": last,
                    "from_epoch_s": seconds(ended_at) - seconds(rows[epoch]),
                    "from_last_epoch_s": seconds(ended_at) - seconds(rows[last]),
                }
            )
    return found


# --- the report -------------------------------------------------------------------------


def quality_lines(data: str, grid: dict[str, Any], tunes: list[dict[str, Any]]) -> list[Line]:
    gaps = [grid["best"] - t["best"] for t in tunes]
    shares = [t["epochs"] / grid["epochs"] for t in tunes]
    gap, share = statistics.median(gaps), statistics.median(shares)
    each = ", ".join(f"s{t['seed']} {t['best']:.4f}" for t in tunes)
    each_epochs = ", ".join(f"{t['epochs']}" for t in tunes)
    hp = grid["best_hyperparameters"]
    return [
        Line(
            f"{data}: grid 27 x {grid['runs'][0]['epoch']} epochs, best val_acc",
            "reported",
            f"{grid['best']:.4f} (lr {hp['learning_rate']:g}, hidden {hp['hidden_size']}, dropout {hp['dropout']:g});"
            f" {grid['epochs']} epochs, {grid['wall_s']:.0f} s",
            None,
            grid,
        ),
        Line(
            f"{data}: ml tune best val_acc, grid - tune (median of {len(tunes)} seeds)",
            f"<= {GAP_TARGET}",
            f"{gap:+.4f} (tune {each})",
            gap <= GAP_TARGET + 1e-12,
            {"gaps": gaps, "median_gap": gap, "best": [t["best"] for t in tunes]},
        ),
        Line(
            f"{data}: ml tune epochs / grid epochs (median)",
            f"<= {EPOCH_SHARE_TARGET:.0%}",
            f"{share:.1%} ({each_epochs} of {grid['epochs']})",
            share <= EPOCH_SHARE_TARGET,
            {"shares": shares, "median_share": share, "epochs": [t["epochs"] for t in tunes]},
        ),
    ]


def overhead_lines(data: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[Line]:
    """The whole commands' ratio (the median seed's), then where the difference went in
    that seed's pair."""
    ratios = [v["wall_s"] / r["wall_s"] for v, r in pairs]
    middle = sorted(range(len(pairs)), key=lambda i: ratios[i])[len(pairs) // 2]
    vml_, raw = pairs[middle]
    ratio = ratios[middle]
    same = [matched(v["trials"], r["trials"]) for v, r in pairs]

    def ms(value: float | None, digits: int = 0) -> str:  # None: nothing to measure (1 trial, 1 epoch)
        return "-" if value is None else f"{value:.{digits}f}"

    where = (
        f"to the first trial {vml_['to_first_trial_s']:.1f} s (driver {vml_['to_first_ask_s']:.1f} s, warm process"
        f" {vml_['first_ask_to_start_s']:.1f} s) / raw to its study {raw['to_study_s']:.1f} s; an epoch"
        f" {ms(vml_['epoch_ms'], 1)} / {raw['epoch_ms']:.1f} ms; a trial's start to its first epoch"
        f" {vml_['to_first_epoch_ms']:.0f} ms, last epoch to end {ms(vml_['after_last_epoch_ms'])} ms, between trials"
        f" {ms(vml_['between_trials_ms'])} ms / raw outside epochs {raw['outside_epochs_ms']:.0f} ms a trial"
    )
    return [
        Line(
            f"{data}: ml tune / raw Optuna wall time, --parallel 1 (median of {len(pairs)} seeds)",
            f"<= {RATIO_TARGET:.2f}x",
            f"{ratio:.2f}x (vml {vml_['wall_s']:.1f} s, raw {raw['wall_s']:.1f} s, epochs {vml_['epochs']} / {raw['epochs']};"
            f" each seed {', '.join(f'{r:.2f}' for r in ratios)}; same trials {', '.join(map(str, same))}"
            f" of {len(raw['trials'])})",
            ratio <= RATIO_TARGET,
            {
                "ratios": ratios,
                "median_ratio": ratio,
                "same_trials": same,
                "vml": [v for v, _ in pairs],
                "raw": [r for _, r in pairs],
            },
        ),
        Line(f"{data}: ... that seed, vml / raw", "reported", where, None, {"seed_index": middle}),
    ]


def latency_lines(found: list[dict[str, Any]]) -> list[Line]:
    if not found:
        return [
            Line(
                "pruned trial: its epoch's end -> its end",
                f"< {LATENCY_TARGET:g} s",
                "no trial was pruned",
                None,
                {},
            )
        ]
    lines = []
    for key, what, target in (
        ("from_epoch_s", "the end of the epoch it was pruned at", True),
        ("from_last_epoch_s", "its last recorded epoch", False),
    ):
        values = [f[key] for f in found]
        worst = max(values)
        late = sum(f["last_epoch"] > f["epoch"] for f in found)
        extra = f"; {late} of {len(found)} recorded an epoch after it" if target else ""
        by_data = {
            d: statistics.median(f[key] for f in found if f["data"] == d)
            for d in dict.fromkeys(f["data"] for f in found)
        }
        extra += "; median " + ", ".join(f"{d} {v * 1000:.0f} ms" for d, v in by_data.items())
        lines.append(
            Line(
                f"pruned trial: {what} -> its end, median (max) of {len(found)}",
                f"< {LATENCY_TARGET:g} s" if target else "reported",
                f"{statistics.median(values) * 1000:.0f} ms ({worst * 1000:.0f} ms){extra}",
                worst < LATENCY_TARGET if target else None,
                {"seconds": values, "runs": found} if target else {"seconds": values},
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="sampler seeds, one study each (comma-separated)")
    parser.add_argument("--trials", type=int, default=27, help="trials of each study")
    parser.add_argument(
        "--epochs", type=int, default=20, help="epochs of each grid run and the most of each trial"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the synthetic CSV")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads of each run (and of the raw study)"
    )
    parser.add_argument("--grid-parallel", type=int, default=2, help="grid runs at once")
    parser.add_argument("--space", choices=("ranges", "lists"), default="ranges", help="the study's space")
    parser.add_argument(
        "--pruner",
        choices=("median", "asha", "none"),
        default="median",
        help="both studies' pruner (the target: median)",
    )
    parser.add_argument("--data", default="digits,synthetic", help="projects: digits, synthetic or both")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_child:
        print(json.dumps(raw_study(**json.loads(args.raw_child))))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = args.data.split(",")
    if not datasets or not set(datasets) <= {"digits", "synthetic"}:
        parser.error(f"--data {args.data}: give digits, synthetic or digits,synthetic")
    started = time.perf_counter()
    lines: list[Line] = []
    latencies: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vml-bench-tune-") as tmp:
        root = Path(tmp)
        ENV.update(child_env(root))
        for data in datasets:
            project = make_project(root, data, args.rows)
            check_settings(project, args.trials, args.epochs, args.space, args.pruner)
            grid = run_grid(project, args.epochs, args.grid_parallel, args.threads)
            print(
                f"{data}: grid best {grid['best']:.4f}, {grid['epochs']} epochs, {grid['wall_s']:.0f} s",
                flush=True,
            )
            pairs = []
            for seed in seeds:
                study = (args.trials, args.epochs, args.space, args.threads, args.pruner)
                if seed % 2:
                    tuned = run_tune(project, data, seed, *study)
                    raw = run_raw(project, seed, *study)
                else:
                    raw = run_raw(project, seed, *study)
                    tuned = run_tune(project, data, seed, *study)
                tuned["seed"] = seed
                found = prune_latencies(project, tuned["study"])
                latencies += [f | {"data": data, "seed": seed} for f in found]
                pairs.append((tuned, raw))
                print(
                    f"{data} seed {seed}: tune best {tuned['best']:.4f}, {tuned['epochs']} epochs, {tuned['wall_s']:.1f} s;"
                    f" raw best {raw['best']:.4f}, {raw['epochs']} epochs, {raw['wall_s']:.1f} s;"
                    f" same trials {matched(tuned['trials'], raw['trials'])}/{len(raw['trials'])}",
                    flush=True,
                )
            lines += quality_lines(data, grid, [t for t, _ in pairs])
            lines += overhead_lines(data, pairs)
        lines += latency_lines(latencies)
    elapsed = time.perf_counter() - started
    import vml

    machine = versions("optuna", "torch", "numpy") | {"vml": vml.__version__, "threads": args.threads}
    return finish(lines, elapsed, args.json, machine, vars(args) | {"json": str(args.json)})


if __name__ == "__main__":
    sys.exit(main())
