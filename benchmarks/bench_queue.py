"""Many runs at once: the local queue's overhead, the speed-up of running two at once,
and a simulated 1,000-run sweep in the store.

1. Queue overhead: N trivial runs (1 epoch on the digits template, one CPU thread
   each) through ``ml train --random-seed=1,2,...,N --parallel K`` for K = 1 and 2,
   each with warm starts (the default) and cold (``VML_WARM_START=0``), beside the same
   N runs back to back in one process (``Project.train_in_process``, one thread); the
   warm queue at K = 1 and the baseline in ``--trials`` pairs, the median pair reported.
   Per-run overhead = (queue wall time x K - in-process wall time) / N: what each run
   costs a slot beyond its training (a worker starting, claiming the run, the data
   cache read, the queue noticing it ended). Also the time from a run's slot freeing
   (the run before it ending, at K = 1) to its first recorded step, and for the first
   run from being queued to its first step (warm: the warm process starting).
2. Parallel speed-up: 2 runs of E epochs, each with 1 CPU thread, through the queue
   with --parallel 2 beside --parallel 1, from the first run's start to the last run's
   end (the whole commands are reported too: they include the warm process starting).
3. A simulated sweep of 1,000 finished runs with ~1,000 metric points each, written
   straight to the store (no training): ``ml list --sweep ID`` beside plain ``ml list``
   (whole commands, median of 5), and the store's size on disk.

    .venv/bin/python benchmarks/bench_queue.py [--runs 20] [--trials 3] [--epochs 100] [--sweep-runs 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from report import Line, finish

from vml.api import Project, create_project
from vml.store import RunStore
from vml.store.runs import utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "queue.json"
LIST_REPEATS = 5
STEPS, EPOCHS_SIMULATED = 23, 20


def ml(*args: str, cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run ``ml ARGS`` to the end; its wall time. A failure stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vml", *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"ml {' '.join(args)} failed: {result.stderr[-2000:]}")
    return elapsed


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def queue_runs(root: Path, label: str, runs: int, parallel: int, warm: bool) -> dict[str, float]:
    """``runs`` one-epoch runs through ``ml train`` with a sweep of seeds, ``parallel``
    at a time with one CPU thread each, warm or cold (``VML_WARM_START=0``): the wall
    time, and when each run's first step was recorded after its slot was free."""
    project = create_project(root / label)
    ml("train", "--epochs=1", "--random-seed=0", cwd=project)  # the data cache, made before
    env = {**os.environ, "VML_WARM_START": "1" if warm else "0"}
    seeds = ",".join(str(i) for i in range(1, runs + 1))
    args = ("train", "--epochs=1", f"--random-seed={seeds}", "--parallel", str(parallel), "--cpus-per-run", "1")
    wall = ml(*args, cwd=project, env=env)
    with RunStore(project / "trainings" / "vml.db") as store:
        found = store.conn.execute(
            "select r.created_at, r.ended_at, min(m.time) from runs r join metrics m on m.run_id = r.id"
            " where r.sweep is not null and m.key = 'step_loss' group by r.id order by r.id"
        ).fetchall()
    firsts = [seconds(first) - seconds(created) for created, _, first in found[:1]]
    # At --parallel 1 a run's slot frees when the run before it ends.
    gaps = [seconds(found[i][2]) - seconds(found[i - 1][1]) for i in range(1, len(found))]
    return {"wall_s": wall, "first_run_to_step_s": firsts[0], "next_run_to_step_ms": statistics.median(gaps) * 1000}


def in_process(folder: Path, runs: int) -> float:
    """The same runs back to back in this process, one thread (as each queued run has)."""
    import torch

    torch.set_num_threads(1)
    inline = Project(create_project(folder))
    inline.train_in_process(["--epochs=1", "--random-seed=0"], stderr=io.StringIO())  # warm: imports, cache
    start = time.perf_counter()
    for seed in range(1, runs + 1):
        inline.train_in_process(["--epochs=1", f"--random-seed={seed}"], stderr=io.StringIO())
    return time.perf_counter() - start


def bench_overhead(root: Path, runs: int, trials: int) -> list[Line]:
    # The machine is noisy (the same command varies by 2x within an hour): the warm
    # queue at --parallel 1, the target, is timed in `trials` pairs with the baseline,
    # each pair back to back, and the median pair reported.
    pairs = []
    for trial in range(trials):
        inline_s = in_process(root / f"inline-{trial}", runs)
        pairs.append((inline_s, queue_runs(root, f"warm-1-{trial}", runs, 1, warm=True)))
    per_pair = sorted(((m["wall_s"] - i) / runs * 1000, i, m) for i, m in pairs)
    warm_ms, inline_s, warm = per_pair[len(per_pair) // 2]
    cold = queue_runs(root, "cold-1", runs, 1, warm=False)
    cold_ms = (cold["wall_s"] - inline_s) / runs * 1000
    spread = ", ".join(f"{ms:.0f}" for ms, _, _ in per_pair)
    lines = [
        Line(
            f"{runs} one-epoch runs back to back in one process, one thread (the baseline, median pair)",
            "reported",
            f"{inline_s:.2f} s ({inline_s / runs * 1000:.0f} ms a run)",
            None,
            {"in_process_s": inline_s, "runs": runs, "trials": [i for i, _ in pairs]},
        ),
        Line(
            "overhead per run at --parallel 1: warm / cold start ((queue time - baseline) / runs)",
            "<= 250 ms",
            f"{warm_ms:.0f} ms / {cold_ms:.0f} ms = {warm_ms / cold_ms:.2f}x (warm, each pair: {spread} ms)",
            warm_ms <= 250,
            {"warm_ms": warm_ms, "cold_ms": cold_ms, "warm_trials_ms": [ms for ms, _, _ in per_pair]}
            | {f"warm_{k}": v for k, v in warm.items()}
            | {f"cold_{k}": v for k, v in cold.items()},
        ),
        Line(
            "a run's slot free -> its first step, --parallel 1 (median of runs 2..N): warm / cold",
            "reported",
            f"{warm['next_run_to_step_ms']:.0f} ms / {cold['next_run_to_step_ms']:.0f} ms",
            None,
            {"warm_ms": warm["next_run_to_step_ms"], "cold_ms": cold["next_run_to_step_ms"]},
        ),
        Line(
            "the first run: queued -> first step (warm: the warm process starting): warm / cold",
            "reported",
            f"{warm['first_run_to_step_s']:.2f} s / {cold['first_run_to_step_s']:.2f} s",
            None,
            {"warm_s": warm["first_run_to_step_s"], "cold_s": cold["first_run_to_step_s"]},
        ),
    ]
    measured = {w: queue_runs(root, f"{'warm' if w else 'cold'}-2", runs, 2, warm=w) for w in (True, False)}
    # What each run costs its slot beyond its training: two slots, each charged the wall time.
    overhead = {w: (m["wall_s"] * 2 - inline_s) / runs * 1000 for w, m in measured.items()}
    lines.append(
        Line(
            "overhead per run at --parallel 2: warm / cold start ((queue time x 2 - baseline) / runs)",
            "reported",
            f"{overhead[True]:.0f} ms / {overhead[False]:.0f} ms = {overhead[True] / overhead[False]:.2f}x",
            None,
            {"warm_ms": overhead[True], "cold_ms": overhead[False]}
            | {f"{'warm' if w else 'cold'}_{k}": v for w, m in measured.items() for k, v in m.items()},
        )
    )
    return lines


def sweep_span(project: Path) -> float:
    """Seconds from the newest sweep's first run starting to its last run ending."""
    with RunStore(project / "trainings" / "vml.db") as store:
        (sweep,) = store.conn.execute("select id from sweeps order by created_at desc limit 1").fetchone()
        first, last = store.conn.execute(
            "select min(started_at), max(ended_at) from runs where sweep = ?", [sweep]
        ).fetchone()
    return seconds(last) - seconds(first)


def bench_speedup(root: Path, epochs: int) -> list[Line]:
    project = create_project(root / "speedup")
    args = (f"--epochs={epochs}", "--random-seed=1,2", "--cpus-per-run", "1")
    ml("train", "--epochs=1", "--random-seed=0", cwd=project)  # the data cache, made once
    sequential = ml("train", *args, "--parallel", "1", cwd=project)
    sequential_span = sweep_span(project)
    parallel = ml("train", *args, "--parallel", "2", cwd=project)
    parallel_span = sweep_span(project)
    return [
        Line(
            f"2 runs of {epochs} epochs on {os.cpu_count()} cores, first start to last end: in sequence / 2 at once",
            "reported",
            f"{sequential_span:.1f} s / {parallel_span:.1f} s = {sequential_span / parallel_span:.2f}x speed-up"
            f" (whole commands {sequential:.1f} s / {parallel:.1f} s)",
            None,
            {
                "sequential_s": sequential,
                "parallel_s": parallel,
                "sequential_span_s": sequential_span,
                "parallel_span_s": parallel_span,
                "speedup": sequential_span / parallel_span,
            },
        )
    ]


def simulate_sweep(project: Project, runs: int) -> str:
    """A finished sweep of ``runs`` runs with per-epoch and per-step metrics, recorded
    the way the trainer records them."""
    rng = random.Random(42)
    base = project.resolve()
    sweep = "sw-bench1"
    with RunStore(project.db_path) as store:
        store.create_sweep(sweep, "bench_queue.py", parallel=2, backend="local")
        for i in range(runs):
            rate = 10 ** rng.uniform(-4, -1)
            hparams = base | {"learning_rate": rate, "random_seed": i}
            run_id = store.create_run(
                f"sim-{i:05d}",
                "mlp",
                hparams,
                status="finished",
                sweep=sweep,
                epoch=EPOCHS_SIMULATED,
                epochs=EPOCHS_SIMULATED,
                step=STEPS,
                steps=STEPS,
                monitor="val_acc",
                best_metric=rng.uniform(0.8, 0.98),
                best_epoch=EPOCHS_SIMULATED,
                test_acc=rng.uniform(0.8, 0.98),
                test_loss=rng.uniform(0.05, 0.5),
                ended_at=utcnow(),
            )
            stamp = utcnow()
            points = []
            for epoch in range(1, EPOCHS_SIMULATED + 1):
                for step in range(1, STEPS + 1):
                    at = (epoch - 1) * STEPS + step
                    points += [
                        (run_id, "step_loss", epoch, at, 1.0 / at, stamp),
                        (run_id, "lr", epoch, at, rate, stamp),
                    ]
                for key in ("loss", "acc", "val_loss", "val_acc"):
                    points.append((run_id, key, epoch, epoch * STEPS, rng.random(), stamp))
            store.add_metric_points(points)
            (project.trainings_dir / f"sim-{i:05d}").mkdir()
    return sweep


def bench_sweep_listing(root: Path, runs: int) -> list[Line]:
    project = Project(create_project(root / "sweep"))
    start = time.perf_counter()
    sweep = simulate_sweep(project, runs)
    fill_s = time.perf_counter() - start
    plain = statistics.median(ml("list", cwd=project.root) for _ in range(LIST_REPEATS))
    swept = statistics.median(ml("list", "--sweep", sweep, cwd=project.root) for _ in range(LIST_REPEATS))
    size = sum(f.stat().st_size for f in project.trainings_dir.glob("vml.db*"))
    with RunStore(project.db_path) as store:
        points = store.conn.execute("select count(*) from metrics").fetchone()[0]
    return [
        Line(
            f"ml list --sweep on a {runs}-run sweep / ml list (newest 50)",
            "reported",
            f"{swept:.3f} s / {plain:.3f} s = {swept / plain:.2f}x",
            None,
            {"sweep_list_s": swept, "list_s": plain, "runs": runs},
        ),
        Line(
            f"store size: {runs} runs, {points:,} metric points",
            "reported",
            f"{size / 2**20:.1f} MiB ({size / runs / 1024:.0f} KiB a run)",
            None,
            {"bytes": size, "metric_points": points, "fill_s": fill_s},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="trivial runs through the queue")
    parser.add_argument(
        "--epochs", type=int, default=100, help="epochs of each of the 2 runs timed for the speed-up"
    )
    parser.add_argument("--trials", type=int, default=3, help="warm queue + baseline pairs at --parallel 1")
    parser.add_argument("--sweep-runs", type=int, default=1000, help="runs of the simulated sweep")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-queue-") as tmp:
        root = Path(tmp)
        lines = bench_overhead(root, args.runs, args.trials)
        lines += bench_speedup(root, args.epochs)
        lines += bench_sweep_listing(root, args.sweep_runs)
    elapsed = time.perf_counter() - started
    return finish(lines, elapsed, args.json, {}, vars(args) | {"json": str(args.json)})


if __name__ == "__main__":
    sys.exit(main())
