"""The Ray backend on a local Ray instance: runs as Ray tasks whose records reach the
project's store only through the driver, files written in place or copied back, and
``ml cancel`` reaching a run on Ray."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import torch

from vml import api
from vml.launch import sweep
from vml.launch.ray import CHUNK_BYTES, PACKAGE_LIMIT, RayScheduler, _Incoming, _pieces, cluster_runtime_env

DEADLINE = 180.0


def runs(project: Path) -> dict[str, dict]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        db.row_factory = sqlite3.Row
        return {r["name"]: dict(r) for r in db.execute("select * from runs")}


def metric_counts(project: Path, run_id: int) -> dict[str, int]:
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        return dict(db.execute("select key, count(*) from metrics where run_id = ? group by key", [run_id]))


def test_a_runs_file_on_ray_records_like_a_local_queue(project: Path, ml) -> None:
    (project / "runs.yaml").write_text(
        "config:\n  backend: ray\n  cpus-per-run: 1\nruns:\n  ray-a:\n    epochs: 2\n  ray-b:\n    epochs: 2\n    learning-rate: 0.01\n"
    )
    result = ml("queue", "runs.yaml", cwd=project, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert "started as a Ray task (1 CPU, 0 GPU)" in result.stderr
    recorded = runs(project)
    assert {name: r["status"] for name, r in recorded.items()} == {"ray-a": "finished", "ray-b": "finished"}
    for name, row in recorded.items():
        assert row["host"].startswith("ray:") and row["test_acc"] > 0.5
        assert (row["epoch"], row["step"], row["steps"]) == (2, 23, 23)
        counts = metric_counts(project, row["id"])
        assert counts == {"loss": 2, "acc": 2, "val_loss": 2, "val_acc": 2, "step_loss": 46, "lr": 46}
        folder = project / "trainings" / name
        assert {"best.pt", "last.pt", "log.txt", "config.yaml"} <= {p.name for p in folder.iterdir()}


def test_files_are_copied_back_when_the_worker_has_no_shared_storage(project: Path) -> None:
    proj = api.Project(project)
    planned = [sweep.Planned({"epochs": ("--epochs", "1")}, name="far-away")]
    queued = proj.queue(planned, "a test", parallel=1, backend="ray", cpus_per_run=1)
    ended = RayScheduler(proj.config, queued.sweep, parallel=1, copy_back=True).run()
    assert ended == {"far-away": "finished"}
    folder = project / "trainings" / "far-away"
    checkpoint = torch.load(folder / "best.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert "finished: test_acc" in (folder / "log.txt").read_text()
    assert not list(folder.glob(".*.tmp"))


def test_ml_cancel_reaches_a_run_on_ray(project: Path, ml) -> None:
    started = ml(
        "queue", "--backend", "ray", "--epochs=100000,100001", "--parallel", "1", "--detach", cwd=project
    )
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.strip()
    end = time.monotonic() + DEADLINE
    while not any(r["status"] == "running" and r["epoch"] >= 1 for r in runs(project).values()):
        assert time.monotonic() < end, "timed out waiting for the Ray run to train"
        time.sleep(0.2)
    running = next(name for name, r in runs(project).items() if r["status"] == "running")
    cancelled = ml("cancel", "--sweep", sweep_id, "--timeout", "60", cwd=project, timeout=DEADLINE)
    assert cancelled.returncode == 0, cancelled.stderr
    while runs(project)[running]["status"] == "running":
        assert time.monotonic() < end, "timed out waiting for the Ray run to stop"
        time.sleep(0.2)
    statuses = {name: r["status"] for name, r in runs(project).items()}
    assert statuses[running] == "cancelled"
    assert set(statuses.values()) == {"cancelled"}
    assert runs(project)[running]["epoch"] < 100000


def test_a_study_on_ray_reports_prunes_and_records_like_a_local_one(project: Path, ml) -> None:
    # lr 1e-5 learns next to nothing: pruned once a 1e-2 trial finished. Over Ray the
    # stop request travels through the driver and the task's heartbeat (about 1 s).
    result = ml(
        "tune", "--backend", "ray", "--parallel", "1", "--cpus-per-run", "1", "--sampler", "grid", "--seed", "3",
        "--learning-rate=0.00001,0.01", "--hidden-size=16,32", "--epochs=60", "--name", "on-ray",
        cwd=project, timeout=DEADLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "started as a Ray task (1 CPU, 0 GPU)" in result.stderr
    trials = sorted((r for r in runs(project).values() if r["sweep"] == "on-ray"), key=lambda r: r["trial"])
    assert [r["trial"] for r in trials] == [0, 1, 2, 3]
    assert all(r["host"].startswith("ray:") for r in trials)
    first_finished = min(r["trial"] for r in trials if r["status"] == "finished")
    late_hopeless = [r for r in trials if "1e-05" in r["hyperparameters"] and r["trial"] > first_finished]
    assert late_hopeless and all(r["status"] == "pruned" and r["epoch"] < 60 for r in late_hopeless)
    assert all(r["prune_reason"].startswith("pruned at epoch ") for r in late_hopeless)


def test_a_checkpoint_comes_back_in_pieces_whole_or_not_at_all(tmp_path: Path) -> None:
    # What a task streams and the driver writes, without a cluster: a 20 MiB file as
    # pieces of at most CHUNK_BYTES, and a stream cut off halfway leaving nothing.
    sent, back = tmp_path / "sent", tmp_path / "back"
    (sent / "epochs").mkdir(parents=True)
    (sent / "best.pt").write_bytes(os.urandom(20 * 1024 * 1024))
    (sent / "epochs" / "epoch-1.pt").write_bytes(b"")
    pieces = list(_pieces(sent))
    assert max(len(piece) for _, _, piece in pieces) == CHUNK_BYTES
    incoming = _Incoming(back)
    for piece in pieces:
        incoming.add(*piece)
    assert (back / "best.pt").read_bytes() == (sent / "best.pt").read_bytes()
    assert (back / "epochs" / "epoch-1.pt").read_bytes() == b""
    cut = _Incoming(tmp_path / "cut")
    for piece in pieces[:2]:
        cut.add(*piece)
    cut.discard()  # the task died
    assert [p.name for p in (tmp_path / "cut").iterdir()] == []


def test_a_cluster_gets_vml_and_the_project_less_its_runs_unless_too_big(project: Path) -> None:
    config = api.Project(project).config
    env, sent = cluster_runtime_env(config)
    assert sent and env["working_dir"] == str(project)
    assert Path(env["py_modules"][0], "launch", "ray.py").is_file()
    assert {"/trainings/", "/.cache/", ".git/"} <= set(env["excludes"])
    with (project / "data" / "huge.bin").open("wb") as handle:
        handle.truncate(PACKAGE_LIMIT + 1)  # sparse: no disk space taken
    env, sent = cluster_runtime_env(config)
    assert not sent and "working_dir" not in env and env["py_modules"]
