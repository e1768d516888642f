"""Many runs at once: the local queue's overhead, the speed-up of running two at once,
and a simulated 1,000-run sweep in the store.

1. Scheduler overhead: N trivial runs (1 epoch on the digits template) through
   ``ml train --random-seed=1,2,...,N --parallel 2``, beside the same N runs back to
   back in one process (``Project.train_in_process``). Per-run overhead = (queue wall
   time x K - in-process wall time) / N: what each run costs a slot beyond its training
   (a worker process starting, importing torch, claiming the run).
2. Parallel speed-up: 2 runs of E epochs, each with 1 CPU thread, through the queue
   with --parallel 2 beside --parallel 1.
3. A simulated sweep of 1,000 finished runs with ~1,000 metric points each, written
   straight to the store (no training): ``ml list --sweep ID`` beside plain ``ml list``
   (whole commands, median of 5), and the store's size on disk.

    .venv/bin/python benchmarks/bench_queue.py [--runs 100] [--epochs 30] [--sweep-runs 1000] [--json out.json]
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
from pathlib import Path

from report import Line, finish

from vml.api import Project, create_project
from vml.store import RunStore
from vml.store.runs import utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "queue.json"
LIST_REPEATS = 5
STEPS, EPOCHS_SIMULATED = 23, 20


def ml(*args: str, cwd: Path) -> float:
    """Run ``ml ARGS`` to the end; its wall time. A failure stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "vml", *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"ml {' '.join(args)} failed: {result.stderr[-2000:]}")
    return elapsed


def bench_overhead(root: Path, runs: int) -> list[Line]:
    queued = create_project(root / "queued")
    seeds = ",".join(str(i) for i in range(1, runs + 1))
    queue_s = ml(
        "train", "--epochs=1", f"--random-seed={seeds}", "--parallel", "2", "--cpus-per-run", "1", cwd=queued
    )

    inline = Project(create_project(root / "inline"))
    inline.train_in_process(
        ["--epochs=1", "--random-seed=0"], stderr=io.StringIO()
    )  # warm: imports, data cache
    start = time.perf_counter()
    for seed in range(1, runs + 1):
        inline.train_in_process(["--epochs=1", f"--random-seed={seed}"], stderr=io.StringIO())
    inline_s = time.perf_counter() - start
    overhead_ms = (queue_s * 2 - inline_s) / runs * 1000
    return [
        Line(
            f"{runs} one-epoch runs: queue (K=2) / back to back in one process",
            "reported",
            f"{queue_s:.1f} s / {inline_s:.1f} s = {queue_s / inline_s:.2f}x",
            None,
            {"queue_s": queue_s, "in_process_s": inline_s, "runs": runs},
        ),
        Line(
            "scheduler overhead per run (a worker starting, importing torch)",
            "reported",
            f"{overhead_ms:.0f} ms",
            None,
            {"overhead_ms": overhead_ms},
        ),
    ]


def bench_speedup(root: Path, epochs: int) -> list[Line]:
    project = create_project(root / "speedup")
    args = (f"--epochs={epochs}", "--random-seed=1,2", "--cpus-per-run", "1")
    ml("train", "--epochs=1", "--random-seed=0", cwd=project)  # the data cache, made once
    sequential = ml("train", *args, "--parallel", "1", cwd=project)
    parallel = ml("train", *args, "--parallel", "2", cwd=project)
    return [
        Line(
            f"2 runs of {epochs} epochs on {os.cpu_count()} cores: in sequence / 2 at once",
            "reported",
            f"{sequential:.1f} s / {parallel:.1f} s = {sequential / parallel:.2f}x speed-up",
            None,
            {"sequential_s": sequential, "parallel_s": parallel, "speedup": sequential / parallel},
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
    parser.add_argument("--runs", type=int, default=100, help="trivial runs through the queue")
    parser.add_argument(
        "--epochs", type=int, default=30, help="epochs of each of the 2 runs timed for the speed-up"
    )
    parser.add_argument("--sweep-runs", type=int, default=1000, help="runs of the simulated sweep")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vml-bench-queue-") as tmp:
        root = Path(tmp)
        lines = bench_overhead(root, args.runs)
        lines += bench_speedup(root, args.epochs)
        lines += bench_sweep_listing(root, args.sweep_runs)
    elapsed = time.perf_counter() - started
    return finish(lines, elapsed, args.json, {}, vars(args) | {"json": str(args.json)})


if __name__ == "__main__":
    sys.exit(main())
