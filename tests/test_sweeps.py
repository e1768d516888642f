"""Sweeps through the local queue, with the real ``ml``, real workers and a real store:
grids and random draws, K at a time, pinning, cancelling, a worker killed mid-queue,
and ``--needed``."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import psutil

DEADLINE = 120.0


def rows(project: Path, sweep: str) -> list[dict]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("select * from runs where sweep = ? order by id", [sweep])]


def sweep_id(result) -> str:
    """The sweep id ``ml train`` printed on stderr's first line (or stdout when detached)."""
    words = (result.stdout.strip() or result.stderr).split()
    return next(w.rstrip(":") for w in words if w.startswith("sw-"))


def wait_for(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while not (value := condition()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def overlap(a: dict, b: dict) -> bool:
    start = max(datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(b["started_at"]))
    end = min(datetime.fromisoformat(a["ended_at"]), datetime.fromisoformat(b["ended_at"]))
    return start < end


def test_a_grid_runs_two_at_a_time_and_lists_best_first(project: Path, ml) -> None:
    result = ml(
        "train",
        "--learning-rate=0.01,0.0001",
        "--batch-size=32,64",
        "--epochs=2",
        "--parallel",
        "2",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    sweep = sweep_id(result)
    assert "4 run(s) queued, 2 at a time" in result.stderr
    assert f"sweep {sweep}: 4 of 4 finished" in result.stdout
    runs = rows(project, sweep)
    assert [r["status"] for r in runs] == ["finished"] * 4
    grid = [
        (r["hyperparameters"].count('"learning_rate": 0.01'), '"batch_size": 32' in r["hyperparameters"])
        for r in runs
    ]
    assert grid == [(1, True), (1, False), (0, True), (0, False)]  # the order given, last flag fastest
    # Two at a time: the first two overlap, and no three ever run together.
    assert overlap(runs[0], runs[1])
    for i, run in enumerate(runs):
        assert sum(overlap(run, other) for other in runs[:i] + runs[i + 1 :]) <= 2

    listed = ml("list", "--sweep", sweep, "--format", "csv", cwd=project)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.strip().splitlines()
    columns = header.split(",")
    assert {"learning_rate", "batch_size", "best_metric"} <= set(columns)
    best = [float(line.split(",")[columns.index("best_metric")]) for line in lines]
    assert len(best) == 4 and best == sorted(best, reverse=True)


def test_one_at_a_time_never_overlaps_and_threads_are_set(project: Path, ml) -> None:
    result = ml(
        "train",
        "--learning-rate=0.01,0.02",
        "--epochs=1",
        "--parallel",
        "1",
        "--cpus-per-run",
        "2",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert "1 at a time (2 CPU thread(s) each)" in result.stderr
    first, second = rows(project, sweep_id(result))
    assert not overlap(first, second)


def test_random_draws_from_a_log_range(project: Path, ml) -> None:
    result = ml(
        "train",
        "--learning-rate=1e-4:1e-1:log",
        "--random",
        "3",
        "--sweep-seed",
        "5",
        "--epochs=1",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    runs = rows(project, sweep_id(result))
    rates = [float(r["hyperparameters"].split('"learning_rate": ')[1].split(",")[0]) for r in runs]
    assert len(rates) == 3 and len(set(rates)) == 3 and all(1e-4 <= r <= 1e-1 for r in rates)


def test_bad_sweeps_record_nothing(project: Path, ml) -> None:
    for args, message in (
        (("--learning-rate=0.01,fast",), "invalid value --learning-rate=fast"),
        (("--learning-rate=1e-4:1e-1",), "is a range: add --random N"),
        (("--epochs=1,2", "--parallel", "0"), "--parallel 0: run at least 1"),
        (("--epochs=1,2", "--gpus-per-run", "1"), "--gpus-per-run 1: 0 GPU(s) found"),
        (("--epochs=1,2", "--name", "one"), "--name one names one run"),
        (("--epochs=1", "--gpus-per-run", "1"), "--gpus-per-run 1: 0 GPU(s) found"),
        (("--learning-rate=1e-4:1e-1:log",), "--learning-rate=1e-4:1e-1:log is a range"),
    ):
        result = ml("train", *args, cwd=project)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    db = project / "trainings" / "vml.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone() == (0,)
            assert conn.execute("select count(*) from sweeps").fetchone() == (0,)


def test_each_worker_gets_its_own_gpus_and_threads(project: Path, ml, monkeypatch) -> None:
    # Two GPUs as far as the scheduler can tell (on the CPU the runs still train there).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    result = ml(
        "train",
        "--epochs=100000",
        "--learning-rate=0.01,0.02",
        "--gpus-per-run",
        "1",
        "--detach",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    try:

        def first_lines() -> list[str] | None:
            # A run's log opens with what it trains on (a warm-started run's environment
            # is set after its fork, so /proc/PID/environ would not show it).
            logs = [project / "trainings" / r["name"] / "log.txt" for r in rows(project, sweep)]
            if not all(log.is_file() and log.read_text().strip() for log in logs):
                return None
            return [log.read_text().splitlines()[0] for log in logs]

        lines = wait_for(first_lines, "both runs to start")
        threads = max((os.cpu_count() or 1) // 2, 1)
        assert sorted(line.split("CUDA_VISIBLE_DEVICES=")[1].split(",")[0] for line in lines) == ["0", "1"]
        assert all(f", {threads} CPU thread(s)," in line for line in lines)
    finally:
        cancelled = ml("cancel", "--sweep", sweep, cwd=project)
    assert cancelled.returncode == 0, cancelled.stderr
    assert [r["status"] for r in rows(project, sweep)] == ["cancelled", "cancelled"]


def test_a_cancelled_queued_run_leaves_the_queue_and_cancelling_the_sweep_stops_the_rest(
    project: Path, ml
) -> None:
    result = ml(
        "train",
        "--epochs=100000",
        "--learning-rate=0.01,0.02,0.03",
        "--parallel",
        "1",
        "--detach",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    first, second, third = (r["name"] for r in rows(project, sweep))
    wait_for(lambda: rows(project, sweep)[0]["status"] == "running", "the first run to start")
    assert ml("cancel", third, cwd=project).returncode == 0
    assert rows(project, sweep)[2]["status"] == "cancelled" and rows(project, sweep)[2]["pid"] is None
    cancelled = ml("cancel", "--sweep", sweep, cwd=project)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{first}: cancelled" in cancelled.stdout and f"{second}: cancelled" in cancelled.stdout
    runs = rows(project, sweep)
    assert [r["status"] for r in runs] == ["cancelled"] * 3
    assert runs[1]["pid"] is None  # never started
    # The scheduler saw the queue empty and ended.
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        wait_for(
            lambda: db.execute("select ended_at from sweeps where id = ?", [sweep]).fetchone()[0],
            "the scheduler to end",
        )


def test_a_killed_worker_does_not_stop_the_queue(project: Path, ml) -> None:
    result = ml("train", "--epochs=100000,2", "--parallel", "1", "--detach", cwd=project)
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    pid = wait_for(
        lambda: rows(project, sweep)[0]["status"] == "running" and rows(project, sweep)[0]["pid"],
        "the first run",
    )
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: rows(project, sweep)[1]["status"] == "finished", "the second run to finish")
    first = rows(project, sweep)[0]
    assert first["status"] == "crashed" and "exited with code -9" in first["error"]


def test_needed_skips_what_finished_and_runs_what_is_missing(project: Path, ml) -> None:
    first = ml("train", "--learning-rate=0.01,0.02", "--epochs=1", cwd=project)
    assert first.returncode == 0, first.stderr
    done = {r["name"] for r in rows(project, sweep_id(first))}
    again = ml("train", "--learning-rate=0.01,0.02,0.03", "--epochs=1", "--needed", cwd=project)
    assert again.returncode == 0, again.stderr
    skipped = [line for line in again.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2 and all("(--needed)" in line for line in skipped)
    assert {line.split("finished run ")[1].split()[0] for line in skipped} == done
    runs = rows(project, sweep_id(again))
    assert len(runs) == 1 and '"learning_rate": 0.03' in runs[0]["hyperparameters"]
    assert runs[0]["status"] == "finished"
    waited = ml("wait", "--sweep", sweep_id(first), cwd=project)
    assert waited.returncode == 0 and waited.stdout.count(": finished") == 2

    nothing = ml("train", "--learning-rate=0.01,0.02", "--epochs=1", "--needed", cwd=project)
    assert nothing.returncode == 0 and "nothing to run" in nothing.stderr
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute("select count(*) from sweeps").fetchone() == (2,)  # none for the empty one


def test_a_dead_scheduler_leaves_no_run_queued_forever(project: Path, ml) -> None:
    result = ml("train", "--epochs=100000,100001,100002", "--parallel", "1", "--detach", cwd=project)
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    db = sqlite3.connect(project / "trainings" / "vml.db")
    scheduler = wait_for(
        lambda: db.execute("select pid from sweeps where id = ?", [sweep]).fetchone()[0], "the scheduler"
    )
    first = wait_for(
        lambda: rows(project, sweep)[0]["status"] == "running" and rows(project, sweep)[0]["name"], "a run"
    )
    os.kill(scheduler, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(scheduler)] if psutil.pid_exists(scheduler) else [], timeout=30)

    def reaped() -> bool:
        assert ml("list", "--sweep", sweep, cwd=project).returncode == 0  # a reader notices
        return [r["status"] for r in rows(project, sweep)][1:] == ["cancelled", "cancelled"]

    wait_for(reaped, "the queued runs to be cancelled by a reader")
    assert "its queue's scheduler stopped" in rows(project, sweep)[1]["error"]
    assert "--needed" in rows(project, sweep)[1]["error"]
    assert rows(project, sweep)[0]["status"] == "running"  # a started run goes on
    assert ml("cancel", first, cwd=project).returncode == 0
    db.close()


def test_ctrl_c_cancels_a_foreground_sweep(project: Path) -> None:
    import subprocess
    import sys

    sweep = subprocess.Popen(
        [sys.executable, "-m", "vml", "train", "--epochs=100000,100001", "--parallel", "1"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run in the background would pass SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    store = project / "trainings" / "vml.db"

    def training() -> bool:
        if not store.exists():
            return False
        with sqlite3.connect(store, timeout=30) as db:
            try:
                return (
                    db.execute(
                        "select count(*) from runs where status = 'running' and epoch >= 1"
                    ).fetchone()[0]
                    > 0
                )
            except sqlite3.OperationalError:  # the schema is not made yet
                return False

    wait_for(training, "the first run to train")
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=DEADLINE)
    assert sweep.returncode == 130, err
    assert "cancelling its runs (Ctrl-C)" in err and "cancelled" in out
    with sqlite3.connect(store) as db:
        statuses = [r[0] for r in db.execute("select status from runs order by id")]
    assert statuses == ["cancelled", "cancelled"]
