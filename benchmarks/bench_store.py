"""Run-store speed: `ml list` on 10,000 runs, and metric logging from the trainer into SQLite.

`ml list` is timed as a whole command (a subprocess, from start to exit) beside the
interpreter's start-up and the import of the CLI, on a project with 10,000 finished runs,
then on a copy of it whose metrics table holds 2,000,000 per-step rows. Metric logging
drives vml's StoreRecorder with a fake trainer, beside a bare executemany of the same
rows. Everything is written under one temporary directory, removed at the end.

    .venv/bin/python benchmarks/bench_store.py [--runs 10000] [--metric-rows 2000000] [--steps 500000]
        [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from report import Line, finish, versions

import vml
from vml.api import Project, create_project
from vml.liveness import process_identity
from vml.names import generate_name
from vml.store import RunStore
from vml.store.runs import METRIC_INSERT
from vml.train.recorder import EPOCH_METRICS, StoreRecorder

SEED = 42
LIST_REPEATS = 5
REPEATS = 3
LIST_TARGET_S = 0.3
METRICS_TARGET_RATIO = 1.2
POINTS_TARGET = 200_000
STEPS_PER_EPOCH = 10_000
FLUSH_STEPS = 1_000  # steps buffered in about a second of 1 ms steps
FLUSH_REPEATS = 20
TRAIN_SAMPLES = 1_437  # the digits template's training split
REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def connection(store: RunStore) -> sqlite3.Connection:
    """The store's sqlite3 connection: ``store.conn``, or (while the store was built on
    sqlite-utils) the one inside ``store.db``."""
    if hasattr(store, "conn"):
        return store.conn
    return store.db.conn


def scalar(store: RunStore, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return connection(store).execute(sql, params).fetchone()[0]


# --- a project with many runs -----------------------------------------------------------


def fill_project(root: Path, runs: int) -> dict[str, float]:
    """``runs`` finished runs recorded the way ``train_run`` records them: ``create_run``
    with the resolved hyperparameters and ``_run_fields``, the recorder's last
    ``update_run`` fields and ``set_status(finished)`` with the test scores; plus each
    run's folder. Started one every 15 minutes, oldest first."""
    project = Project(root)
    base = project.resolve()
    identity = process_identity(os.getpid())
    rng = random.Random(SEED)
    taken: set[str] = set()
    first = datetime.now(timezone.utc) - timedelta(minutes=15 * runs)
    start = time.perf_counter()
    with RunStore(project.db_path) as store:
        for i in range(runs):
            hparams = base | {
                "epochs": rng.choice((10, 20, 30, 50)),
                "batch_size": rng.choice((32, 64, 128)),
                "learning_rate": rng.choice((1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
                "optimizer": rng.choice(("adam", "adamw", "sgd")),
                "hidden_size": rng.choice((64, 128, 256, 512)),
                "hidden_layers": rng.choice((1, 2, 3)),
                "dropout": rng.choice((0.0, 0.1, 0.2, 0.5)),
                "random_seed": rng.randrange(1000),
            }
            name = generate_name(taken, rng)
            taken.add(name)
            started = first + timedelta(minutes=15 * i)
            stamp = started.isoformat(timespec="milliseconds")
            steps = -(-TRAIN_SAMPLES // hparams["batch_size"])
            run_id = store.create_run(
                name,
                project.config.model.name,
                hparams,
                fingerprint=f"{rng.getrandbits(128):032x}",
                epochs=hparams["epochs"],
                steps=steps,
                monitor="val_acc",
                **identity,
                created_at=stamp,
                started_at=stamp,
                heartbeat=stamp,
            )
            best_epoch = rng.randint(1, hparams["epochs"])
            store.update_run(
                run_id,
                epoch=hparams["epochs"],
                step=steps,
                best_metric=rng.uniform(0.85, 0.99),
                best_epoch=best_epoch,
            )
            ended = (started + timedelta(seconds=rng.uniform(20, 600))).isoformat(timespec="milliseconds")
            store.set_status(
                run_id,
                "finished",
                ("running",),
                ended_at=ended,
                test_acc=rng.uniform(0.8, 0.99),
                test_loss=rng.uniform(0.03, 0.6),
            )
            (project.trainings_dir / name).mkdir()
    return {"fill_s": time.perf_counter() - start}


def metric_rows(run_ids: list[int], total: int) -> Iterator[tuple[int, str, int, int, float, str]]:
    """About ``total`` per-step points (step_loss and lr) spread evenly over the runs."""
    rng = random.Random(SEED)
    steps = max(total // (2 * len(run_ids)), 1)
    for run_id in run_ids:
        stamp = "2026-01-01T00:00:00.000+00:00"
        for step in range(1, steps + 1):
            yield (run_id, "step_loss", 1 + step // 100, step, rng.random(), stamp)
            yield (run_id, "lr", 1 + step // 100, step, 1e-3, stamp)


def add_metric_rows(project_dir: Path, total: int) -> dict[str, float]:
    """Insert the per-step rows with one executemany in one transaction."""
    db = Project(project_dir).db_path
    with RunStore(db) as store:
        conn = connection(store)
        ids = [row[0] for row in conn.execute("select id from runs order by id").fetchall()]
        start = time.perf_counter()
        with conn:
            conn.executemany(METRIC_INSERT, metric_rows(ids, total))
        insert_s = time.perf_counter() - start
        count = scalar(store, "select count(*) from metrics")
    return {"insert_s": insert_s, "metric_rows": count, "db_bytes": db.stat().st_size}


# --- timing `ml list` ---------------------------------------------------------------------


def child_env(root: Path) -> dict[str, str]:
    """The environment of the timed commands, as on a user's machine: bytecode is
    written and read under the temporary directory (``PYTHONPYCACHEPREFIX``), as an
    installed package has its ``.pyc`` files, even where ``PYTHONDONTWRITEBYTECODE`` is
    set; and stdout is buffered (no ``PYTHONUNBUFFERED``; one line measures it set)."""
    unset = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | {"PYTHONPYCACHEPREFIX": str(root / "pycache")}


ENV: dict[str, str] = {}  # set by main(): child_env of its temporary directory


def run_command(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str, str]:
    """Seconds from Popen to exit, stdout and stderr; the command must succeed."""
    start = time.perf_counter()
    env = env or ENV or None
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args[1:]} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return seconds, out.decode(), err.decode()


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PY = [sys.executable]
ML_LIST = [*PY, "-m", "vml", "list"]


def bench_list(root: Path, runs: int, total_metric_rows: int, profile: bool = False) -> list[Line]:
    """Best of 5, in rotated order each round: `python -c pass`, `python -c "import
    vml.cli"`, `ml list` on the project without metric rows and on its copy with them.
    Where the time goes is added when the first line misses its target, or ``profile``."""
    plain = create_project(root / "list")
    setup = fill_project(plain, runs)
    with_metrics = root / "list-metrics"
    shutil.copytree(plain, with_metrics)
    setup |= add_metric_rows(with_metrics, total_metric_rows)

    commands: dict[str, tuple[list[str], Path]] = {
        "pass": ([*PY, "-c", "pass"], root),
        "import": ([*PY, "-c", "import vml.cli.commands"], root),
        "list": (ML_LIST, plain),
        "list_metrics": (ML_LIST, with_metrics),
    }
    for args, cwd in commands.values():  # warm: bytecode (under the prefix), page cache
        run_command(args, cwd)
    times: dict[str, list[float]] = {key: [] for key in commands}
    cpu: dict[str, list[float]] = {key: [] for key in commands}
    outputs: dict[str, str] = {}
    keys = list(commands)
    for round_ in range(LIST_REPEATS):
        shift = round_ % len(keys)
        for key in keys[shift:] + keys[:shift]:
            before = children_cpu()
            seconds, out, _ = run_command(*commands[key])
            cpu[key].append(children_cpu() - before)
            times[key].append(seconds)
            outputs[key] = out
    rows_shown = len([x for x in outputs["list"].splitlines() if x.strip()]) - 2  # header, rule
    if rows_shown != min(runs, 50) or outputs["list"] != outputs["list_metrics"]:
        raise RuntimeError(f"ml list showed {rows_shown} runs:\n{outputs['list'][:2000]}")
    best = {key: min(values) for key, values in times.items()}
    best_cpu = {key: min(values) for key, values in cpu.items()}

    whole = best["list"]
    line = Line(
        name=f"ml list, {runs:,} runs (whole command)",
        target=f"< {LIST_TARGET_S:.3f} s",
        measured=(
            f"{whole:.3f} s (python -c pass {best['pass']:.3f} s, import vml.cli "
            f"{best['import']:.3f} s, list work +{whole - best['import']:.3f} s; CPU {best_cpu['list']:.3f} s)"
        ),
        passed=whole < LIST_TARGET_S,
        values={
            "runs": runs,
            **setup,
            "best_s": best,
            "best_cpu_s": best_cpu,
            "all_s": times,
            "all_cpu_s": cpu,
        },
    )
    ratio = best["list_metrics"] / whole
    cpu_ratio = best_cpu["list_metrics"] / best_cpu["list"]
    lines = [
        line,
        Line(
            name=f"ml list with {setup['metric_rows']:,} metric rows / without",
            target=f"<= {METRICS_TARGET_RATIO:.2f}x",
            measured=(
                f"{ratio:.2f}x ({best['list_metrics']:.3f} vs {whole:.3f} s; CPU time {cpu_ratio:.2f}x)"
            ),
            passed=ratio <= METRICS_TARGET_RATIO,
            values={
                "ratio": ratio,
                "with_s": best["list_metrics"],
                "without_s": whole,
                "cpu_ratio": cpu_ratio,
            },
        ),
    ]
    with RunStore(Project(with_metrics).db_path) as store:
        above = scalar(store, "select count(*) from runs where test_acc > 0.9")
    as_json = ["--all", "--format", "json"]
    unbuffered = ENV | {"PYTHONUNBUFFERED": "1"}
    for name, extra, env, count in (
        ("ml list --all --format json", as_json, None, runs),
        ('ml list --where "test_acc>0.9"', ["--where", "test_acc>0.9"], None, above),
        ("ml list --all --format json, PYTHONUNBUFFERED=1", as_json, unbuffered, runs),
    ):
        seconds, out, err = run_command([*ML_LIST, *extra], with_metrics, env)
        shown = (
            len(json.loads(out)) if "json" in extra else len([x for x in out.splitlines() if x.strip()]) - 2
        )
        hidden = re.search(r"(\d+) more run", err)
        listed = shown + (int(hidden[1]) if hidden else 0)
        if listed != count:
            raise RuntimeError(f"{name} listed {listed} runs, the store holds {count}")
        lines.append(
            Line(
                name=f"{name} (once, with metric rows)",
                target="(report)",
                measured=f"{seconds:.3f} s ({listed:,} runs)",
                passed=None,
                values={"seconds": seconds, "runs_listed": listed, "runs_shown": shown},
            )
        )
    if profile or not line.passed:
        diagnosis = diagnose_list(plain, best)
        line.values["diagnosis"] = diagnosis
        line.profile = diagnosis_text(diagnosis)
    return lines


# --- where `ml list`'s time goes ----------------------------------------------------------

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def import_times(args: list[str], cwd: Path) -> list[tuple[int, int, int, str]]:
    """``-X importtime`` of a command: (self us, cumulative us, depth, module) in the
    order Python prints them (a module after everything it imported)."""
    _, _, err = run_command([*PY, "-X", "importtime", *args], cwd)
    found = []
    for text in err.splitlines():
        match = IMPORT_LINE.match(text)
        if match:
            found.append((int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
    return found


def importers(entries: list[tuple[int, int, int, str]]) -> list[str]:
    """For each entry, who imported it: its nearest importer in each other top-level
    package, innermost first (``numpy`` <- ``sqlite_utils.db <- vml.store.runs``)."""
    parent: dict[int, int] = {}
    waiting: dict[int, list[int]] = collections.defaultdict(list)  # depth -> entries
    for i, (_, _, depth, _) in enumerate(entries):
        # Python prints a module after its imports: the entries waiting one level deeper
        # are this module's imports.
        for j in waiting.pop(depth + 1, []):
            parent[j] = i
        waiting[depth].append(i)
    chains = []
    for i, (_, _, _, name) in enumerate(entries):
        package, chain, j = name.split(".")[0], [], i
        while j in parent:
            j = parent[j]
            above = entries[j][3]
            if above.split(".")[0] not in (package, *(c.split(".")[0] for c in chain)):
                chain.append(above)
        chains.append(" <- ".join(chain) if chain else "(the command)")
    return chains


CHILD = r"""
import contextlib, cProfile, io, json, os, pstats, sys, time
t0 = time.perf_counter()
import vml.cli
t1 = time.perf_counter()

def call(profiler=None):
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            (profiler.runcall if profiler else (lambda f, *a: f(*a)))(vml.cli.main, ["list"])
        except SystemExit as exc:
            assert not exc.code, err.getvalue()
    return time.perf_counter() - start

profiler = cProfile.Profile()
first = call(profiler)
warm = min(call() for _ in range(3))

from vml import api
from vml.cli import render
from vml.views import cell, public_run
from vml.liveness import reap
from vml.store import RunStore
from vml.store.runs import _decode

project = api.Project()
db = project.db_path
def best(run, n=5):
    times = []
    for _ in range(n):
        start = time.perf_counter(); result = run(); times.append(time.perf_counter() - start)
    return min(times), result

phases = {}
phases["open RunStore (pragmas, migration check)"], store = best(lambda: RunStore(db))
sql = "select * from runs order by started_at desc, id desc"
cursor = (store.conn if hasattr(store, "conn") else store.db.conn).cursor()
cursor.row_factory = None
phases["sqlite3 fetchall of the runs (plain tuples)"], _ = best(lambda: cursor.execute(sql).fetchall())
texts = [t for (t,) in cursor.execute("select hyperparameters from runs")]
phases["json.loads of the hyperparameters"], _ = best(lambda: [json.loads(t) for t in texts])
phases["RunStore.runs() (query, rows to dicts, json.loads)"], rows = best(store.runs)
phases["liveness.reap (no run active)"], _ = best(lambda: reap(store, rows))
store.close()
is_dir = lambda: [(project.trainings_dir / r["name"]).is_dir() for r in rows]
phases["is_dir() of each run folder, as records() does"], _ = best(is_dir)
phases["public_run() of each run"], public = best(lambda: [public_run(r) for r in rows])
phases["Project.list_runs() (records + public_run)"], runs = best(lambda: project.list_runs())
fresh = lambda: api.Project().list_columns()
phases["Project().list_columns() (loads vergeml.yaml)"], columns = best(fresh)
def table():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        render.print_table(columns, ([cell(r, c) for c in columns] for r in runs[:50]))
phases["render.print_table of 50 rows"], _ = best(table)

def stats(sort, limit):
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(limit)
    return out.getvalue()

print(json.dumps({
    "import_vml_cli_s": t1 - t0,
    "first_call_s": first,
    "warm_call_s": warm,
    "phases_s": phases,
    "runs": len(rows),
    "profile_cumulative": stats("cumulative", 30),
    "profile_tottime": stats("tottime", 15),
}))
"""


# Costs timed alone, each a `python -c` of its own (best of 3, minus `python -c pass`).
ALONE = (
    ("import numpy", "import numpy", "numpy"),
    ("import sqlite_utils (numpy, click, dateutil, pluggy...)", "import sqlite_utils", "sqlite_utils"),
    (
        "import sqlite_utils + first Database() (plugin entry points)",
        "import sqlite_utils; sqlite_utils.Database(memory=True)",
        "sqlite_utils",
    ),
    ("import typer", "import typer", "typer"),
    ("import typer._adapters (pydantic; typer does it to parse)", "import typer._adapters", "pydantic"),
    (
        "import pydantic + one TypeAdapter (loads its plugins)",
        "import pydantic; pydantic.TypeAdapter(int)",
        "pydantic",
    ),
    ("import rich.console", "import rich.console", "rich"),
    ("import yaml", "import yaml", "yaml"),
    ("import psutil", "import psutil", "psutil"),
    ("import asyncio", "import asyncio", "asyncio"),
    ("import vml.cli.commands", "import vml.cli.commands", "vml"),
)


def alone_costs(cwd: Path, packages: set[str]) -> dict[str, float]:
    """Seconds each snippet of ``ALONE`` whose package the command imports adds to
    `python -c pass`, best of 3 each."""
    commands = {"pass": "pass"} | {label: code for label, code, package in ALONE if package in packages}
    for code in commands.values():  # warm: bytecode
        run_command([*PY, "-c", code], cwd)
    best = {
        label: min(run_command([*PY, "-c", code], cwd)[0] for _ in range(3))
        for label, code in commands.items()
    }
    return {label: seconds - best["pass"] for label, seconds in best.items() if label != "pass"}


def short_paths(text: str) -> str:
    """Profile text with the site-packages, stdlib and repository prefixes cut."""
    for prefix in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], str(REPO)):
        text = text.replace(prefix + "/", "")
    return "\n".join(x.rstrip() for x in text.splitlines() if x.strip())


def diagnose_list(project: Path, best: dict[str, float]) -> dict[str, Any]:
    """Where the time of `ml list` goes: the imports (``-X importtime`` of the command,
    by top-level package, and which ran lazily during the command), then a child process
    that imports vml.cli, runs ``main(["list"])`` under cProfile (the first call, as the
    command does it), again without the profiler (warm: no imports left), and times the
    pieces of the list path on their own."""
    command = import_times(["-m", "vml", "list"], project)
    at_import = {entry[3] for entry in import_times(["-c", "import vml.cli.commands"], project)}
    by_package: collections.Counter[str] = collections.Counter()
    heaviest: dict[str, int] = {}  # package -> index of its module with the most cumulative time
    for i, (self_us, cumulative, _, name) in enumerate(command):
        package = name.split(".")[0]
        by_package[package] += self_us
        if package not in heaviest or cumulative > command[heaviest[package]][1]:
            heaviest[package] = i
    chains = importers(command)
    total_us = sum(by_package.values())
    packages = [
        {
            "package": name,
            "ms": us / 1e3,
            "share": us / total_us,
            "heaviest_module": command[heaviest[name]][3],
            "imported_by": chains[heaviest[name]],
        }
        for name, us in by_package.most_common(15)
    ]
    lazy = [
        {"module": name, "cumulative_ms": cumulative / 1e3}
        for _, cumulative, depth, name in command
        if depth == 0 and name not in at_import and cumulative >= 1000
    ]
    _, out, _ = run_command([*PY, "-c", CHILD], project)
    child = json.loads(out.splitlines()[-1])
    return {
        "subprocess_best_s": best,
        "alone_s": alone_costs(project, set(by_package)),
        "import_total_ms": total_us / 1e3,
        "import_by_package": packages,
        "imported_during_command": lazy,
        "child": {k: v for k, v in child.items() if not k.startswith("profile")},
        "profile_cumulative": short_paths(child["profile_cumulative"]),
        "profile_tottime": short_paths(child["profile_tottime"]),
    }


def diagnosis_text(d: dict[str, Any]) -> str:
    b, c = d["subprocess_best_s"], d["child"]
    lines = [
        "where the time of `ml list` goes (best subprocess times):",
        f"  interpreter start-up (python -c pass)         {b['pass']:7.3f} s",
        f"  import vml.cli, over start-up                 {b['import'] - b['pass']:7.3f} s",
        f"  the list command, over import vml.cli         {b['list'] - b['import']:7.3f} s",
        f"in one process: import vml.cli {c['import_vml_cli_s']:.3f} s; main(['list']) first call "
        f"{c['first_call_s']:.3f} s under cProfile, warm call (no imports left) {c['warm_call_s']:.3f} s",
        "",
        f"imports of `python -X importtime -m vml list` ({d['import_total_ms']:.0f} ms of self time, "
        "inflated by -X importtime), by top-level package:",
        *(
            f"  {p['package']:<18} {p['ms']:7.1f} ms {p['share']:6.1%}   "
            f"{p['heaviest_module']} imported by {p['imported_by']}"
            for p in d["import_by_package"]
        ),
        "imported during the command itself (not by `import vml.cli`), cumulative:",
        *(f"  {m['module']:<40} {m['cumulative_ms']:7.1f} ms" for m in d["imported_during_command"]),
        "",
        "the same costs without -X importtime: each a `python -c` of its own, over `python -c pass`:",
        *(f"  {label:<58} {seconds * 1e3:7.1f} ms" for label, seconds in d["alone_s"].items()),
        "",
        f"pieces of reading all {c['runs']:,} runs (what --all, --where and --sort need), each timed "
        "alone, best of 5:",
        *(f"  {name:<52} {seconds * 1e3:8.1f} ms" for name, seconds in c["phases_s"].items()),
        "",
        "cProfile of vml.cli.main(['list']), first call in a fresh process (after import vml.cli):",
        d["profile_cumulative"],
        "",
        d["profile_tottime"],
    ]
    return "\n".join(lines)


# --- metric logging -----------------------------------------------------------------------


class FakeTrainer:
    """What StoreRecorder reads from a Trainer: epoch, step, global_step,
    steps_per_epoch, loss, lr (a property over the optimizer's first param group, as in
    Trainer) and logs."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.epoch = self.step = self.global_step = 0
        self.steps_per_epoch = steps_per_epoch
        self.loss = 0.0
        self.logs: dict[str, float] = {}
        self.param_groups = [{"lr": 1e-3}]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]


class FakeBest:
    best, best_epoch = 0.93, 3


class NoOp:
    def on_step_end(self, trainer: FakeTrainer) -> None:
        pass

    def on_epoch_end(self, trainer: FakeTrainer) -> None:
        pass

    def on_train_end(self, trainer: FakeTrainer) -> None:
        pass


def drive(callback: Any, steps: int, losses: list[float]) -> dict[str, float]:
    """The Trainer's loop without the model: per step set step, loss and global_step
    and call ``on_step_end``; per epoch bump epoch, set logs, call ``on_epoch_end``; at
    the end ``on_train_end``. Returns the seconds of the whole loop and of the epoch ends."""
    trainer = FakeTrainer(STEPS_PER_EPOCH)
    on_step_end, on_epoch_end = callback.on_step_end, callback.on_epoch_end
    epoch_end_s = 0.0
    start = time.perf_counter()
    for _ in range(-(-steps // STEPS_PER_EPOCH)):
        trainer.logs = {}
        for step in range(1, min(STEPS_PER_EPOCH, steps - trainer.global_step) + 1):
            trainer.step = step
            trainer.loss = losses[step - 1]
            trainer.global_step += 1
            on_step_end(trainer)
        trainer.epoch += 1
        trainer.logs = {"loss": 0.3, "val_loss": 0.35, "acc": 0.9, "val_acc": 0.88}
        started = time.perf_counter()
        on_epoch_end(trainer)
        epoch_end_s += time.perf_counter() - started
    callback.on_train_end(trainer)
    return {"loop_s": time.perf_counter() - start, "epoch_end_s": epoch_end_s}


def new_store(folder: Path) -> tuple[RunStore, int]:
    """A fresh store with one running run, as train_run leaves it."""
    folder.mkdir()
    store = RunStore(folder / "vml.db")
    run_id = store.create_run("bench-run", "mlp", {"epochs": 50}, epochs=50, steps=STEPS_PER_EPOCH)
    return store, run_id


def timed_flushes(recorder: StoreRecorder, log: list[tuple[float, int, str]]) -> dict[str, Any]:
    """Time each ``_flush_points`` of ``recorder`` in place: (seconds, points, caller),
    the caller being ``step`` (the once-a-second flush), ``epoch`` or ``end``. Returns
    the shared state (``flushing`` is True during a flush)."""
    flush, epoch_end, train_end = recorder._flush_points, recorder.on_epoch_end, recorder.on_train_end
    state: dict[str, Any] = {"caller": "step", "flushing": False}

    def wrapped() -> None:
        points = 2 * len(recorder._points)
        state["flushing"] = True
        start = time.perf_counter()
        flush()
        log.append((time.perf_counter() - start, points, state["caller"]))
        state["flushing"] = False

    def tagged(hook: Callable[[Any], None], name: str) -> Callable[[Any], None]:
        def call(trainer: Any) -> None:
            state["caller"] = name
            hook(trainer)
            state["caller"] = "step"

        return call

    recorder._flush_points = wrapped  # type: ignore[method-assign]
    recorder.on_epoch_end = tagged(epoch_end, "epoch")  # type: ignore[method-assign]
    recorder.on_train_end = tagged(train_end, "end")  # type: ignore[method-assign]
    return state


def record_run(folder: Path, steps: int, losses: list[float]) -> dict[str, Any]:
    """One fake training of ``steps`` steps through a StoreRecorder on a fresh store;
    checks the metrics table holds exactly the points logged."""
    store, run_id = new_store(folder)
    recorder = StoreRecorder(store, run_id, FakeBest())  # type: ignore[arg-type]
    flushes: list[tuple[float, int, str]] = []
    inserts = timed_inserts(store, timed_flushes(recorder, flushes))
    result = drive(recorder, steps, losses)
    epochs = -(-steps // STEPS_PER_EPOCH)
    expected = 2 * steps + len(EPOCH_METRICS) * epochs
    count = scalar(store, "select count(*) from metrics where run_id = ?", (run_id,))
    per_key = {k: n for k, n in connection(store).execute("select key, count(*) from metrics group by key")}
    store.close()
    if count != expected or per_key.get("step_loss") != steps or per_key.get("lr") != steps:
        raise RuntimeError(f"metrics table holds {count} points ({per_key}), {expected} were logged")
    return result | {"points": count, "epochs": epochs, "flushes": flushes, "insert_s": sum(inserts)}


def timed_inserts(store: RunStore, flushes: dict[str, Any] | None = None) -> list[float]:
    """Time each ``add_metric_points`` of ``store`` in place (the executemany and commit of
    a flush; the rest of a flush is building its rows). With the state of
    ``timed_flushes``, only the calls made by a flush are kept (not the epoch metrics)."""
    log: list[float] = []
    add = store.add_metric_points

    def wrapped(points: list[tuple[int, str, int, int, float, str]]) -> None:
        start = time.perf_counter()
        add(points)
        if flushes is None or flushes["flushing"]:
            log.append(time.perf_counter() - start)

    store.add_metric_points = wrapped  # type: ignore[method-assign]
    return log


def bare_rows(run_id: int, steps: int) -> list[tuple[int, str, int, int, float, str]]:
    """The rows a recorder writes for ``steps`` steps: two per step, four per epoch."""
    rng = random.Random(SEED)
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    rows = []
    for step in range(1, steps + 1):
        epoch = 1 + (step - 1) // STEPS_PER_EPOCH
        rows += [
            (run_id, "step_loss", epoch, step, rng.random(), stamp),
            (run_id, "lr", epoch, step, 1e-3, stamp),
        ]
        if step % STEPS_PER_EPOCH == 0 or step == steps:
            rows += [(run_id, key, epoch, step, 0.5, stamp) for key in EPOCH_METRICS]
    return rows


def bare_insert(folder: Path, steps: int) -> float:
    """The baseline: one executemany of the same rows, prebuilt, in one transaction."""
    store, run_id = new_store(folder)
    rows = bare_rows(run_id, steps)
    start = time.perf_counter()
    conn = connection(store)
    with conn:
        conn.executemany(METRIC_INSERT, rows)
    seconds = time.perf_counter() - start
    count = scalar(store, "select count(*) from metrics")
    store.close()
    if count != len(rows):
        raise RuntimeError(f"bare insert wrote {count} of {len(rows)} rows")
    return seconds


def flush_cost(folder: Path) -> dict[str, float]:
    """Median over 20 rounds of one flush of 1,000 buffered steps (2,000 points, about a
    second of 1 ms steps), beside a bare executemany of 2,000 prebuilt rows."""
    store, run_id = new_store(folder)
    recorder = StoreRecorder(store, run_id, FakeBest())  # type: ignore[arg-type]
    inserts = timed_inserts(store)
    trainer = FakeTrainer(FLUSH_STEPS)
    rows = bare_rows(run_id, FLUSH_STEPS)[: 2 * FLUSH_STEPS]
    vml_s, bare_s = [], []
    for _ in range(FLUSH_REPEATS):
        recorder._last_flush = time.monotonic()  # no time-based flush while buffering
        for step in range(1, FLUSH_STEPS + 1):
            trainer.step = step
            trainer.global_step += 1
            recorder.on_step_end(trainer)
        if len(recorder._points) != FLUSH_STEPS:
            raise RuntimeError("the recorder flushed while buffering")
        vml_s.append(timed(recorder._flush_points)[0])
        start = time.perf_counter()
        with connection(store):
            connection(store).executemany(METRIC_INSERT, rows)
        bare_s.append(time.perf_counter() - start)
    store.close()
    return {
        "vml_s": statistics.median(vml_s),
        "insert_s": statistics.median(inserts),
        "bare_s": statistics.median(bare_s),
    }


def bench_recorder(root: Path, steps: int) -> list[Line]:
    """Baseline and vml in turn, 3 times, each on a fresh store; best of each."""
    losses = [random.Random(SEED + i).random() for i in range(STEPS_PER_EPOCH)]
    noop_s = min(drive(NoOp(), steps, losses)["loop_s"] for _ in range(REPEATS))
    bare, runs = [], []
    for i in range(REPEATS):
        bare.append(bare_insert(root / f"bare-{i}", steps))
        runs.append(record_run(root / f"vml-{i}", steps, losses))
        shutil.rmtree(root / f"bare-{i}")
        shutil.rmtree(root / f"vml-{i}")
    run = min(runs, key=lambda r: r["loop_s"])
    bare_s, vml_s, points = min(bare), run["loop_s"], run["points"]
    rate = points / vml_s
    ratio = vml_s / bare_s
    # The epoch-end flushes are inside epoch_end_s; the time-based ones inside on_step_end.
    flushes = [(s, n) for s, n, _ in run["flushes"] if n]
    flush_s, flushed = sum(s for s, _ in flushes), sum(n for _, n in flushes)
    step_flush_s = sum(s for s, n, caller in run["flushes"] if n and caller == "step")
    time_based = sum(1 for _, n, caller in run["flushes"] if n and caller == "step")
    per_call_us = (vml_s - noop_s - run["epoch_end_s"]) / steps * 1e6
    append_us = per_call_us - step_flush_s / steps * 1e6
    epoch_flush_s = flush_s - step_flush_s
    epoch_rest_ms = (run["epoch_end_s"] - epoch_flush_s) / run["epochs"] * 1e3
    build_us = (flush_s - run["insert_s"]) / flushed * 1e6
    insert_us = run["insert_s"] / flushed * 1e6
    bare_us = bare_s / points * 1e6
    flush = flush_cost(root / "flush")
    shutil.rmtree(root / "flush")
    flush_ratio = flush["vml_s"] / flush["bare_s"]
    lines = [
        Line(
            name=f"metric logging, {steps:,} steps ({points:,} points)",
            target=f"> {POINTS_TARGET:,}/s",
            measured=(
                f"{rate:,.0f} points/s (vml {vml_s:.2f} s, bare executemany {bare_s:.2f} s, "
                f"vml/bare {ratio:.2f}x)"
            ),
            passed=rate > POINTS_TARGET,
            values={
                "points": points,
                "steps": steps,
                "steps_per_epoch": STEPS_PER_EPOCH,
                "points_per_s": rate,
                "vml_s": vml_s,
                "bare_s": bare_s,
                "ratio": ratio,
                "driver_only_s": noop_s,
                "epoch_end_s": run["epoch_end_s"],
                "epoch_end_besides_flush_ms": epoch_rest_ms,
                "all_vml_s": [r["loop_s"] for r in runs],
                "all_bare_s": bare,
            },
        ),
        Line(
            name="StoreRecorder.on_step_end (mean per call)",
            target="(report)",
            measured=(
                f"{per_call_us:.2f} us (buffering {append_us:.2f} us, time-based flushes "
                f"{per_call_us - append_us:.2f} us)"
            ),
            passed=None,
            values={
                "on_step_end_us": per_call_us,
                "buffering_us": append_us,
                "time_based_flushes": time_based,
                "time_based_flush_s": step_flush_s,
            },
        ),
        Line(
            name="flushes in that run (per point)",
            target="(report)",
            measured=(
                f"{flush_s / flushed * 1e6:.2f} us = rows {build_us:.2f} + add_metric_points "
                f"{insert_us:.2f} (bare {bare_us:.2f}); {len(flushes)} x {flushed / len(flushes):,.0f} points"
            ),
            passed=None,
            values={
                "flush_s": flush_s,
                "flushes": len(flushes),
                "points_flushed": flushed,
                "flush_us_per_point": flush_s / flushed * 1e6,
                "build_rows_us_per_point": build_us,
                "add_metric_points_us_per_point": insert_us,
                "bare_us_per_point": bare_us,
                "flush_log": run["flushes"],
            },
        ),
        Line(
            name=f"one flush of {FLUSH_STEPS:,} buffered steps ({2 * FLUSH_STEPS:,} points)",
            target="(report)",
            measured=(
                f"{flush['vml_s'] * 1e3:.2f} ms (add_metric_points {flush['insert_s'] * 1e3:.2f} ms; "
                f"bare executemany {flush['bare_s'] * 1e3:.2f} ms, vml/bare {flush_ratio:.2f}x)"
            ),
            passed=None,
            values={**flush, "ratio": flush_ratio, "points": 2 * FLUSH_STEPS},
        ),
    ]
    if not lines[0].passed:
        lines[0].profile = recorder_profile(root / "profile", min(steps, 100_000), losses)
        shutil.rmtree(root / "profile")
    return lines


def recorder_profile(folder: Path, steps: int, losses: list[float]) -> str:
    """cProfile's top 15 (by own time) of a fake training of ``steps`` steps."""
    profiler = cProfile.Profile()
    profiler.runcall(record_run, folder, steps, losses)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return f"cProfile of StoreRecorder over {steps:,} fake steps (by own time):\n" + short_paths(
        out.getvalue()
    )


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in the project")
    parser.add_argument(
        "--metric-rows", type=int, default=2_000_000, help="per-step metric rows for the second ml list"
    )
    parser.add_argument("--steps", type=int, default=500_000, help="steps the fake trainer logs")
    parser.add_argument(
        "--profile", action="store_true", help="show where ml list's time goes even when it meets its target"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-") as tmp:
        root = Path(tmp)
        ENV.update(child_env(root))
        lines = bench_list(root, args.runs, args.metric_rows, args.profile)
        lines += bench_recorder(root, args.steps)
    elapsed = time.perf_counter() - started

    machine = {
        "sqlite": sqlite3.sqlite_version,
        **versions("sqlite-utils", "typer", "rich", "pydantic", "numpy"),
        "vml": vml.__version__,
    }
    run_args = {
        "runs": args.runs,
        "metric_rows": args.metric_rows,
        "steps": args.steps,
        "profile": args.profile,
    }
    return finish(lines, elapsed, args.json, machine, run_args)


if __name__ == "__main__":
    sys.exit(main())
