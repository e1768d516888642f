"""Scale: the commands that read runs, on 1,000, 10,000 and 100,000 runs (50 metric rows each).

Each size is a project from ``create_project`` whose store is filled in bulk with
finished runs shaped as ``train_run`` records them (the resolved hyperparameters, the
test scores, 50 metric points: 20 epochs of loss/acc/val_loss/val_acc and 30 steps),
each with its folder and a log. Every command is timed as a whole (a subprocess, from
start to exit, best of 3) beside ``ml list`` on the same project: the baseline that
reads only the newest page, so a ratio says what a command costs on top of starting
vml. Peak memory is the child's ``ru_maxrss``. ``Run.status()`` and ``Project.run``
are timed in this process. The idle dashboard runs in a child for a while, its CPU
time and memory read from ``/proc``. ``ml prune`` runs last, on the largest project.
Everything is written under one temporary directory, removed at the end.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from report import Line, child_env, finish, versions

from vml.api import Project, create_project
from vml.names import generate_name
from vml.store import RunStore
from vml.store.runs import EPOCH_METRICS, METRIC_INSERT

SEED = 42
REPEATS = 3
EPOCHS = 5
STEPS = POINTS_PER_RUN = 50  # metric rows a run: 5 epochs x 4 epoch metrics, 30 step losses
STATUS_CALLS = 200
PRUNED_SHARE = 0.9  # of the largest project, ended more than a day ago
PY = [sys.executable]
RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
# The targets at 100,000 runs: seconds, except where the name says otherwise.
TARGETS = {
    "where": 0.3,
    "sort": 0.3,
    "json": 1.5,
    "json_mb": 100,
    "show": 0.3,
    "logs": 0.3,
    "compare": 0.3,
    "status_ms": 5.0,
    "prune": 20.0,
}


def fill(root: Path, runs: int) -> dict[str, float]:
    """``runs`` finished runs in bulk, oldest first, with ``POINTS_PER_RUN`` metric rows,
    a folder and a one-line log each. The oldest ``PRUNED_SHARE`` ended days to a year
    ago, the rest in the last 20 hours. Every tenth run lacks its test scores and every
    fifth has a ``dropout`` of ``"none"`` (text), so the filters meet missing values
    and mixed types."""
    project = Project(root)
    base = project.resolve()
    rng = random.Random(SEED)
    taken: set[str] = set()
    now = datetime.now(timezone.utc)
    old = int(runs * PRUNED_SHARE)
    start = time.perf_counter()
    rows = []
    for i in range(runs):
        hparams = base | {
            "epochs": EPOCHS,
            "batch_size": rng.choice((32, 64, 128)),
            "learning_rate": rng.choice((1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
            "optimizer": rng.choice(("adam", "adamw", "sgd")),
            "hidden_size": rng.choice((64, 128, 256, 512)),
            "dropout": "none" if i % 5 == 0 else rng.choice((0.0, 0.1, 0.2, 0.5)),
            "random_seed": rng.randrange(1000),
        }
        name = generate_name(taken, rng)
        taken.add(name)
        if i < old:
            started = now - timedelta(days=365) + timedelta(days=363 * i / max(old, 1))
        else:
            started = now - timedelta(hours=20) + timedelta(hours=19 * (i - old) / max(runs - old, 1))
        ended = started + timedelta(seconds=rng.uniform(20, 600))
        scored = i % 10 != 0
        stamp, end = started.isoformat(timespec="milliseconds"), ended.isoformat(timespec="milliseconds")
        rows.append(
            (name, project.config.model.name, "finished", stamp, stamp, end, end, EPOCHS, EPOCHS, 23, 23)
            + (json.dumps(hparams, sort_keys=True), f"{rng.getrandbits(128):032x}", "val_acc")
            + (rng.uniform(0.85, 0.99), rng.randint(1, EPOCHS))
            + ((rng.uniform(0.8, 0.99), rng.uniform(0.03, 0.6)) if scored else (None, None))
        )
    columns = (
        "name, model, status, created_at, started_at, ended_at, heartbeat, epoch, epochs, step, steps,"
        " hyperparameters, fingerprint, monitor, best_metric, best_epoch, test_acc, test_loss"
    )
    with RunStore(project.db_path) as store, store.conn:
        store.conn.executemany(f"insert into runs ({columns}) values ({', '.join('?' * len(rows[0]))})", rows)
        ids = [row[0] for row in store.conn.execute("select id from runs order by id")]
        store.conn.executemany(METRIC_INSERT, metric_points(ids, rows[0][3]))
    for row in rows:
        folder = project.trainings_dir / row[0]
        folder.mkdir()
        (folder / "log.txt").write_text(f"{row[0]}: finished\n")
    return {"fill_s": time.perf_counter() - start, "db_mb": project.db_path.stat().st_size / 1e6}


def metric_points(run_ids: list[int], stamp: str) -> Iterator[tuple[int, str, int, int, float, str]]:
    rng = random.Random(SEED)
    for run_id in run_ids:
        for epoch in range(1, EPOCHS + 1):
            for key in EPOCH_METRICS:
                yield (run_id, key, epoch, epoch * 23, rng.random(), stamp)
        for step in range(1, POINTS_PER_RUN - EPOCHS * len(EPOCH_METRICS) + 1):
            yield (run_id, "step_loss", 1 + step // 23, step, rng.random(), stamp)


# --- timing -------------------------------------------------------------------------------


# Each command runs under this small launcher, which times it and reads its peak memory
# (``ru_maxrss`` from ``wait4``). A child's peak counts the pages of the process that
# forked it, so the benchmark itself, holding a filled store's rows, cannot be the one.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    json.dump({"s": seconds, "mb": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}, out)
"""


def run_command(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds from start to exit, the command's peak resident MB, and its stdout; the
    command must succeed."""
    with tempfile.TemporaryDirectory() as tmp:
        report, out, err = Path(tmp) / "report.json", Path(tmp) / "out", Path(tmp) / "err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            subprocess.run(
                [*PY, "-c", LAUNCHER, str(report), *args],
                cwd=cwd,
                env=env,
                stdout=stdout,
                stderr=stderr,
                check=True,
            )
        found = json.loads(report.read_text())
        if found["code"] != 0:
            raise RuntimeError(f"{args[3:]} exited {found['code']}: {err.read_text()[-2000:]}")
        return found["s"], found["mb"], out.read_text()


def best_of(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    runs = [run_command(args, cwd, env) for _ in range(REPEATS)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def timed_in_process(call, times: int) -> float:
    """Mean seconds of ``call()`` over ``times`` calls (after one untimed)."""
    call()
    start = time.perf_counter()
    for _ in range(times):
        call()
    return (time.perf_counter() - start) / times


def measure(root: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each command on the project at ``root``: seconds (best of 3) and peak MB."""
    project = Project(root)
    newest = project.list_runs(limit=2)
    name, other = newest[0]["instance"], newest[1]["instance"]
    ml = [*PY, "-m", "vml"]
    commands = {
        "list": ["list"],
        "where": ["list", "--where", "test_acc>0.95"],
        "sort": ["list", "--sort=-test_acc"],
        "where_hyperparameter": ["list", "--where", "learning_rate>0.001"],
        "json": ["list", "--all", "--format", "json"],
        "show": ["show", name],
        "logs": ["logs", name],
        "compare": ["compare", name, other],
    }
    found: dict[str, dict[str, float]] = {}
    for key, args in commands.items():
        seconds, mb, out = best_of([*ml, *args], root, env)
        found[key] = {"s": seconds, "mb": mb}
        if key == "json":
            found[key]["runs"] = len(json.loads(out))
    run = project.run(name)
    found["status_ms"] = {"ms": 1000 * timed_in_process(run.status, STATUS_CALLS)}
    found["run_last_ms"] = {"ms": 1000 * timed_in_process(lambda: project.run("@last"), STATUS_CALLS // 4)}
    return found


def prune(root: Path, env: dict[str, str]) -> dict[str, float]:
    """``ml prune --older-than 1d --yes`` once, on the project (it is gone afterwards)."""
    before = Project(root).count_records()
    seconds, mb, out = run_command([*PY, "-m", "vml", "prune", "--older-than", "1d", "--yes"], root, env)
    after = Project(root).count_records()
    return {"s": seconds, "mb": mb, "removed": before - after, "left": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="run counts, comma-separated")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    started = time.perf_counter()
    lines: list[Line] = []
    table: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vml-bench-scale-") as tmp:
        env = child_env(Path(tmp))
        for size in sizes:
            root = create_project(Path(tmp) / f"runs-{size}")
            setup = fill(root, size)
            run_command([*PY, "-m", "vml", "list"], root, env)  # warm: bytecode, page cache
            table[size] = {"setup": setup, **measure(root, env)}
            print(f"{size:,} runs: {json.dumps(table[size])}", flush=True)
        largest = max(sizes)
        table[largest]["prune"] = prune(Path(tmp) / f"runs-{largest}", env)
    lines += report(table, largest)
    return finish(
        lines,
        time.perf_counter() - started,
        args.json,
        {**versions("vml"), "sqlite": sqlite3.sqlite_version},
        {"sizes": sizes, "table": {str(k): v for k, v in table.items()}},
    )


LABELS = {
    "list": "ml list (the baseline: the newest 50)",
    "where": 'ml list --where "test_acc>0.95"',
    "sort": "ml list --sort=-test_acc",
    "where_hyperparameter": 'ml list --where "learning_rate>0.001"',
    "json": "ml list --all --format json",
    "show": "ml show NAME",
    "logs": "ml logs NAME",
    "compare": "ml compare A B",
}


def report(table: dict[int, dict[str, Any]], largest: int) -> list[Line]:
    """A line per command at the largest size against its target, with every size's
    time and the ratio to ``ml list`` at that size."""
    lines = []
    sizes = sorted(table)
    for key, label in LABELS.items():
        at = table[largest][key]
        growth = ", ".join(f"{size:,}: {table[size][key]['s']:.3f} s" for size in sizes)
        ratio = at["s"] / table[largest]["list"]["s"]
        target = TARGETS.get(key)
        measured = f"{at['s']:.3f} s, {ratio:.2f}x ml list, {at['mb']:.0f} MB ({growth})"
        passed = None if target is None else at["s"] <= target
        if key == "json":
            passed = at["s"] <= TARGETS["json"] and at["mb"] <= TARGETS["json_mb"]
            target_text = f"<= {TARGETS['json']} s, {TARGETS['json_mb']} MB"
        else:
            target_text = "(report)" if target is None else f"<= {target} s"
        lines.append(
            Line(
                f"{label}, {largest:,} runs",
                target_text,
                measured,
                passed,
                {"by_size": {str(size): table[size][key] for size in sizes}},
            )
        )
    for key, label in (("status_ms", "Run.status()"), ("run_last_ms", 'Project.run("@last")')):
        growth = ", ".join(f"{size:,}: {table[size][key]['ms']:.2f} ms" for size in sizes)
        ms = table[largest][key]["ms"]
        target = TARGETS["status_ms"] if key == "status_ms" else None
        lines.append(
            Line(
                f"{label}, {largest:,} runs (in process, mean of many)",
                "(report)" if target is None else f"<= {target} ms",
                f"{ms:.2f} ms ({growth})",
                None if target is None else ms <= target,
                {"by_size": {str(size): table[size][key] for size in sizes}},
            )
        )
    pruned = table[largest]["prune"]
    lines.append(
        Line(
            f"ml prune --older-than 1d --yes, {largest:,} runs",
            f"< {TARGETS['prune']} s",
            f"{pruned['s']:.1f} s ({pruned['removed']:,} removed, {pruned['left']:,} left, {pruned['mb']:.0f} MB)",
            pruned["s"] < TARGETS["prune"],
            pruned,
        )
    )
    return lines


if __name__ == "__main__":
    sys.exit(main())
