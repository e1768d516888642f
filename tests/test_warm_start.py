"""Warm starts: a queue's runs fork from a process that imported torch once. Real
sweeps through ``ml``, real forked workers, real signals: the records match a cold
start's, cancel, kill and SIGKILL behave as for any worker, no module state carries
over, CUDA is never initialised in the warm process, and the queue outlives it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import psutil
import yaml
from test_lifecycle import SLOW_MODEL
from test_sweeps import rows, sweep_id, wait_for

from vml.launch.warm import WarmStarter

DEADLINE = 120.0


def warm_parent(pid: int) -> bool:
    """Whether process ``pid`` was forked from the warm process (the fork server)."""
    return "forkserver" in " ".join(psutil.Process(pid).parent().cmdline())


def set_model(project: Path, spec: str) -> None:
    tree = yaml.safe_load((project / "vergeml.yaml").read_text())
    tree["model"] = spec
    (project / "vergeml.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))


def metric_counts(project: Path, run_id: int) -> dict[str, int]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        found = db.execute("select key, count(*) from metrics where run_id = ? group by key", [run_id])
        return dict(found.fetchall())


def test_a_warm_started_run_records_what_a_cold_one_records(project: Path, ml, monkeypatch) -> None:
    args = ("train", "--epochs=2", "--learning-rate=0.001,0.002", "--parallel", "1", "--cpus-per-run", "1")
    warm = ml(*args, cwd=project)
    assert warm.returncode == 0, warm.stderr
    monkeypatch.setenv("VML_WARM_START", "0")
    cold = ml(*args, cwd=project)
    assert cold.returncode == 0, cold.stderr
    same = ("status", "model", "epoch", "epochs", "step", "steps", "fingerprint", "monitor", "host")
    same += ("test_acc", "test_loss", "test_f1", "test_auc", "test_ap", "best_metric", "best_epoch", "error")
    same += ("hyperparameters",)
    for w, c in zip(rows(project, sweep_id(warm)), rows(project, sweep_id(cold)), strict=True):
        # Same seed, same data, one thread each: the same numbers, to the last bit.
        assert {k: w[k] for k in same} == {k: c[k] for k in same}
        for key in ("pid", "pid_started", "started_at", "ended_at", "heartbeat"):
            assert w[key] is not None and c[key] is not None, key
        assert metric_counts(project, w["id"]) == metric_counts(project, c["id"])
        folders = [project / "trainings" / r["name"] for r in (w, c)]
        assert [sorted(p.name for p in f.iterdir()) for f in folders] == [
            ["best.pt", "config.yaml", "evaluation.json", "last.pt", "log.txt", "predictions.npz", "repro.json", "worker.txt"]
        ] * 2
        evaluations = [json.loads((f / "evaluation.json").read_text()) for f in folders]
        assert evaluations[0] == evaluations[1]
        configs = [yaml.safe_load((f / "config.yaml").read_text()) for f in folders]
        assert [c | {"name": None} for c in configs] == [configs[1] | {"name": None}] * 2
        logs = [(f / "log.txt").read_text().splitlines() for f in folders]
        steps = [[line.split(",")[:3] for line in log if "step:[" in line] for log in logs]  # no timings
        assert steps[0] == steps[1] and len(steps[0]) >= 2
        assert logs[0][-1] == logs[1][-1] and logs[0][-1].startswith("finished: test_acc")
        assert all(", 1 CPU thread(s), started" in log[0] for log in logs)
        assert [(f / "worker.txt").read_text() for f in folders] == ["", ""]  # nothing printed


def test_cancel_and_sigkill_reach_warm_started_runs(project: Path, ml) -> None:
    args = ("train", "--epochs=100000", "--learning-rate=0.01,0.02", "--parallel", "2", "--cpus-per-run", "1")
    result = ml(*args, "--detach", cwd=project)
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    try:
        first, second = wait_for(
            lambda: (runs := rows(project, sweep))
            and all(r["status"] == "running" and (r["epoch"] or 0) >= 1 for r in runs)
            and runs,
            "both runs to train an epoch",
        )
        assert warm_parent(first["pid"]) and warm_parent(second["pid"])
        # Each leads its own session and process group, as a cold worker does.
        assert {os.getpgid(r["pid"]) for r in (first, second)} == {first["pid"], second["pid"]}
        cancelled = ml("cancel", first["name"], "--timeout", "10", cwd=project)
        assert (cancelled.returncode, cancelled.stdout) == (0, f"{first['name']}: cancelled\n")
        os.kill(second["pid"], signal.SIGKILL)
        crashed = wait_for(
            lambda: (row := rows(project, sweep)[1])["status"] != "running" and row, "the killed run to end"
        )
        assert crashed["status"] == "crashed" and "exited with code -9" in crashed["error"]
    finally:
        ml("cancel", "--sweep", sweep, cwd=project)
    assert (project / "trainings" / first["name"] / "best.pt").is_file()


def test_a_warm_started_run_that_does_not_stop_is_killed_with_its_process_group(project: Path, ml) -> None:
    (project / "stuck.py").write_text(SLOW_MODEL)  # forward never returns; starts a helper
    set_model(project, "./stuck.py:Stuck")
    result = ml("train", "--epochs=1,2", "--parallel", "1", "--detach", cwd=project)
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    helper = int(
        wait_for(lambda: (project / "stuck.json").is_file() and (project / "stuck.json").read_text(), "forward")
    )
    first = rows(project, sweep)[0]
    assert warm_parent(first["pid"])
    killed = ml("cancel", "--sweep", sweep, "--timeout", "1", cwd=project)
    assert killed.returncode == 0, killed.stderr
    assert rows(project, sweep)[0]["status"] == "killed"
    for pid in (first["pid"], helper):
        wait_for(
            lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
            f"pid {pid} to end",
            deadline=10,
        )


COUNTING = '''
import math
import os

import torch
from torch import nn

# A module global of the project's own, and state it leaves in a module the warm
# process imported: a run forked after another must see neither.
IMPORTED = getattr(torch, "_vml_test_imports", 0) + 1
torch._vml_test_imports = IMPORTED


class Counting(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)
        with open("imports.txt", "a") as out:
            out.write(f"{IMPORTED} {torch.get_num_threads()} {os.getpid()}\\n")

    def forward(self, x):
        return self.fc(x.flatten(1))
'''


def test_two_runs_in_a_row_share_no_module_state(project: Path, ml) -> None:
    (project / "counting.py").write_text(COUNTING)
    set_model(project, "./counting.py:Counting")
    result = ml("train", "--epochs=1", "--random-seed=1,2,3", "--parallel", "1", "--cpus-per-run", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in (project / "imports.txt").read_text().splitlines()]
    assert [(imported, threads) for imported, threads, _ in lines] == [("1", "1")] * 3
    assert len({pid for _, _, pid in lines}) == 3  # a process of its own each
    assert [r["status"] for r in rows(project, sweep_id(result))] == ["finished"] * 3


def probe(path: str) -> None:
    """In a process forked from the warm process: what the warm process had done."""
    import torch

    state = {
        "torch": "torch._dynamo" in sys.modules and "vml.train.runner" in sys.modules,
        "cuda_initialized": torch.cuda.is_initialized(),
    }
    Path(path).write_text(json.dumps(state))


def test_the_warm_process_has_imported_torch_and_never_initialised_cuda(tmp_path: Path) -> None:
    starter = WarmStarter()
    out = tmp_path / "probe.json"
    process = starter.context.Process(target=probe, args=(str(out),))
    process.start()
    process.join(DEADLINE)
    assert process.exitcode == 0
    state = json.loads(out.read_text())
    # Forked from it before anything ran here: what it imported, and its CUDA state.
    assert state == {"torch": True, "cuda_initialized": False}


def test_the_queue_survives_its_warm_process_being_killed(project: Path, ml) -> None:
    result = ml("train", "--epochs=100000,1,2", "--parallel", "1", "--detach", cwd=project)
    assert result.returncode == 0, result.stderr
    sweep = result.stdout.strip()
    first = wait_for(
        lambda: (row := rows(project, sweep)[0])["status"] == "running" and (row["epoch"] or 0) >= 1 and row,
        "the first run to train an epoch",
    )
    server = psutil.Process(first["pid"]).parent()
    assert "forkserver" in " ".join(server.cmdline())
    server.kill()
    # A zombie until the scheduler, its parent, next looks (when it starts a run).
    wait_for(lambda: not server.is_running() or server.status() == psutil.STATUS_ZOMBIE, "it to die", 10)
    # Its run lives on without it, and can still be cancelled.
    assert psutil.Process(first["pid"]).is_running()
    cancelled = ml("cancel", first["name"], "--timeout", "10", cwd=project)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"{first['name']}: cancelled\n")
    wait_for(lambda: all(r["status"] not in ("queued", "running") for r in rows(project, sweep)), "the sweep")
    runs = rows(project, sweep)
    assert [r["status"] for r in runs] == ["cancelled", "finished", "finished"]
    said = (project / "trainings" / ".sweeps" / f"{sweep}.txt").read_text()
    assert f"note: the warm process (pid {server.pid}) was gone: started a new one" in said
