"""``ml train --gpus N``: one run in N processes through torchrun with
DistributedDataParallel, here on the CPU with gloo and 2 processes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psutil
import torch

DEADLINE = 120.0


def row(project: Path, name: str) -> dict:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("select * from runs where name = ?", [name]).fetchone())


def test_two_processes_train_one_run_and_only_rank_0_records(project: Path, ml) -> None:
    result = ml("train", "--gpus", "2", "--epochs=2", "--name=ddp", cwd=project, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ddp: finished, test_acc")
    assert "device cpu x 2 processes (DistributedDataParallel)" in result.stderr
    run = row(project, "ddp")
    assert (run["status"], run["epoch"], run["step"], run["steps"]) == ("finished", 2, 23, 23)
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        counts = dict(
            db.execute("select key, count(*) from metrics where run_id = ? group by key", [run["id"]])
        )
    # Exactly one process's records: a second writer would double them.
    assert counts == {"loss": 2, "acc": 2, "val_loss": 2, "val_acc": 2, "step_loss": 46, "lr": 46}
    log = (project / "trainings" / "ddp" / "log.txt").read_text()
    assert log.count("finished: test_acc") == 1
    checkpoint = torch.load(project / "trainings" / "ddp" / "best.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["model"])  # the model, not its DDP wrapper
    assert ml("predict", "ddp", "data/digits.csv", cwd=project).returncode == 0


def test_cancel_stops_every_process_together(project: Path, ml) -> None:
    started = ml("train", "--gpus", "2", "--epochs=100000", "--name=ddp-long", "--detach", cwd=project)
    assert started.returncode == 0, started.stderr
    end = time.monotonic() + DEADLINE
    while not (row(project, "ddp-long")["status"] == "running" and row(project, "ddp-long")["epoch"] >= 1):
        assert time.monotonic() < end, "timed out waiting for the run to train"
        time.sleep(0.1)
    launcher = psutil.Process(row(project, "ddp-long")["pid"]).parent()  # rank 0's torchrun
    ranks = launcher.children()
    assert len(ranks) == 2
    cancelled = ml("cancel", "ddp-long", "--timeout", "30", cwd=project)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == "ddp-long: cancelled"
    gone, alive = psutil.wait_procs([launcher, *ranks], timeout=DEADLINE)
    assert alive == []
    assert row(project, "ddp-long")["epoch"] < 100000


def test_gpus_must_be_at_least_one(project: Path, ml) -> None:
    refused = ml("train", "--gpus", "0", cwd=project)
    assert refused.returncode == 2 and "--gpus 0: train on at least 1" in refused.stderr
