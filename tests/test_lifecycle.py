"""Runs as processes: started detached, watched, cancelled, killed and found crashed,
with real worker processes, real signals and the real store."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
import yaml

from vml import api
from vml.liveness import host as this_host
from vml.store import RunStore
from vml.store.runs import utcnow
from vml.store.schema import SCHEMA_VERSION

DEADLINE = 90.0


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if found := condition():
            return found
    raise AssertionError(f"timed out waiting for {what}")


def show(ml, project: Path, name: str) -> dict[str, Any]:
    result = ml("show", name, "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def record(project: Path, name: str) -> dict[str, Any]:
    with RunStore(project / "trainings" / "vml.db") as store:
        row = store.run_by_name(name)
    assert row is not None, name
    return row


def detach(ml, project: Path, *args: str) -> str:
    result = ml("train", "--detach", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def train_here(project: Path, *args: str, name: str) -> str:
    """Train in this process (no interpreter or torch start-up); the final status."""
    return api.Project(project).train_in_process(list(args), name=name, stderr=io.StringIO()).status


def status_of(project: Path, name: str) -> str:
    return api.Project(project).find_run(name)["status"]


def test_a_detached_run_records_what_a_foreground_run_records(project: Path, ml) -> None:
    name = detach(ml, project, "--epochs=2", "--name=background")
    assert name == "background"
    waited = ml("wait", name, cwd=project)
    assert (waited.returncode, waited.stdout.split(",")[0]) == (0, "background: finished")
    assert ml("train", "--epochs=2", "--name=foreground", cwd=project).returncode == 0
    back, fore = record(project, "background"), record(project, "foreground")
    same = (
        "status",
        "model",
        "epoch",
        "epochs",
        "step",
        "steps",
        "fingerprint",
        "monitor",
        "host",
        "test_acc",
    )
    assert {k: back[k] for k in same} == {k: fore[k] for k in same}
    assert back["hyperparameters"] == fore["hyperparameters"]
    for key in ("pid", "pid_started", "started_at", "ended_at", "heartbeat", "best_epoch"):
        assert back[key] is not None and fore[key] is not None, key
    for run in ("background", "foreground"):
        folder = project / "trainings" / run
        assert {"best.pt", "last.pt", "config.yaml", "log.txt"} <= {p.name for p in folder.iterdir()}
        assert "finished: test_acc" in (folder / "log.txt").read_text()
    info = show(ml, project, "background")
    assert {"instance", "status", "pid", "host", "hyperparameters", "best_epoch", "best_metric"} <= set(info)
    assert {"checkpoint", "test_acc", "test_loss", "error"} <= set(info)
    assert info["checkpoint"] == str(project / "trainings" / "background" / "best.pt")
    assert info["status"] == "finished" and info["error"] is None


def test_logs_follow_prints_the_run_until_it_ends(project: Path, ml) -> None:
    name = detach(ml, project, "--epochs=3", "--log-every=5")
    followed = ml("logs", name, "--follow", cwd=project)
    assert followed.returncode == 0
    lines = followed.stdout.splitlines()
    assert lines[0].startswith(f"run {name}: model mlp")
    assert lines[-1].startswith("finished: test_acc")
    assert sum("epoch time" in line for line in lines) == 3
    shown = ml("logs", name, "--metrics", cwd=project)
    assert shown.returncode == 0 and shown.stdout, shown.stderr
    metrics = shown.stdout.splitlines()
    assert metrics[0].split() == ["epoch", "loss", "acc", "val_loss", "val_acc"]
    assert [row.split()[0] for row in metrics[1:]] == ["1", "2", "3"]


def slow_epochs(ml, project: Path, *args: str) -> str:
    """A detached run long enough to act on, once its first epoch has ended."""
    name = detach(ml, project, "--epochs=500", *args)
    wait_for(lambda: (record(project, name)["epoch"] or 0) >= 1, "the first epoch")
    return name


def test_cancel_from_another_process_stops_at_a_batch_boundary(project: Path, ml) -> None:
    name = slow_epochs(ml, project)
    # A short timeout: a worker that took longer to stop would be killed, not cancelled.
    result = ml("cancel", name, "--timeout", "3", cwd=project)
    assert (result.returncode, result.stdout) == (0, f"{name}: cancelled\n"), result.stderr
    row = record(project, name)
    assert row["status"] == "cancelled" and row["ended_at"] is not None
    best = torch.load(project / "trainings" / name / "best.pt", weights_only=True)
    assert best["epoch"] >= 1
    assert not psutil.pid_exists(row["pid"]) or psutil.Process(row["pid"]).status() == psutil.STATUS_ZOMBIE
    # A cancelled run can be cancelled again (a message, exit 0) and resumed.
    again = ml("cancel", name, cwd=project)
    assert (again.returncode, again.stderr) == (0, f"{name}: already cancelled; nothing to cancel\n")


SLOW_MODEL = '''
import math
import subprocess
import sys
import time
from pathlib import Path

from torch import nn


class Stuck(nn.Module):
    """Its forward never returns on its own, and it started a helper process."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x):
        if not self.training:  # vml trying it on two samples before the run: fits
            return self.fc(x.flatten(1))
        helper = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        Path("stuck.json").write_text(str(helper.pid))
        while True:  # a signal handler runs between these bytecodes, but nothing ends it
            time.monotonic()
'''


def test_a_run_that_does_not_stop_is_killed_with_its_process_group(project: Path, ml) -> None:
    (project / "stuck.py").write_text(SLOW_MODEL)
    spec = yaml.safe_load((project / "vergeml.yaml").read_text())
    spec["model"] = "./stuck.py:Stuck"
    (project / "vergeml.yaml").write_text(yaml.safe_dump(spec))
    name = detach(ml, project, "--epochs=1")
    helper_pid = int(
        wait_for(
            lambda: (project / "stuck.json").exists() and (project / "stuck.json").read_text(),
            "the model's forward",
        )
    )
    result = ml("cancel", name, "--timeout", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{name}: killed: did not stop within 1 s of ml cancel; stopped with SIG")
    row = record(project, name)
    assert row["status"] == "killed"
    # The whole process group went: the worker and the process it started.
    for pid in (row["pid"], helper_pid):
        wait_for(
            lambda pid=pid: (
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            ),
            f"pid {pid} to end",
            deadline=10,
        )


def test_a_killed_worker_shows_as_crashed_and_can_be_resumed(project: Path, ml) -> None:
    name = slow_epochs(ml, project)
    os.kill(record(project, name)["pid"], signal.SIGKILL)
    listed = wait_for(
        lambda: [
            r
            for r in json.loads(ml("list", "--format", "json", cwd=project).stdout)
            if r["status"] == "crashed"
        ],
        "ml list to show the run crashed",
        deadline=30,
    )
    assert [r["instance"] for r in listed] == [name]
    info = show(ml, project, name)
    assert info["status"] == "crashed" and "is gone" in info["error"]
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        epochs = db.execute(
            "select count(*) from metrics where run_id = ? and key = 'val_acc'", [record(project, name)["id"]]
        ).fetchone()[0]
    assert epochs >= 1
    assert torch.load(project / "trainings" / name / "best.pt", weights_only=True)["epoch"] >= 1
    # Resumed for a few more epochs from where it was killed.
    spec = yaml.safe_load((project / "vergeml.yaml").read_text())
    assert spec  # the project is unchanged, so resume accepts the data
    with RunStore(project / "trainings" / "vml.db") as store:
        row = store.run_by_name(name)
        hyper = {**row["hyperparameters"], "epochs": row["epoch"] + 1}
        store.update_run(
            row["id"], epochs=row["epoch"] + 1, hyperparameters=json.dumps(hyper, sort_keys=True)
        )
    started = record(project, name)["started_at"]
    resumed = ml("resume", name, cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{name}: finished" in resumed.stdout
    # It keeps its place in ml list, and the steps it replayed are not counted twice.
    assert record(project, name)["started_at"] == started
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        total, distinct = db.execute(
            "select count(*), count(distinct step) from metrics where run_id = ? and key = 'step_loss'",
            [record(project, name)["id"]],
        ).fetchone()
    assert total == distinct


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_a_random_moment_never_tears_a_checkpoint(project: Path, ml, seed: int) -> None:
    import random

    # A model with ~25 MB checkpoints, so some kills land while one is being written.
    name = detach(ml, project, "--epochs=50", "--hidden-size=1024", "--hidden-layers=2", f"--name=k{seed}")
    wait_for(lambda: record(project, name)["pid"], "the worker's pid")
    delay = random.Random(seed).uniform(0.0, 6.0)
    end = time.monotonic() + delay
    while time.monotonic() < end and status_of(project, name) in ("queued", "running"):
        pass
    row = record(project, name)
    try:
        os.killpg(row["pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    final = wait_for(
        lambda: status_of(project, name) not in ("queued", "running") and status_of(project, name),
        "an end state",
        deadline=30,
    )
    assert final in ("crashed", "finished"), final
    folder = project / "trainings" / name
    for checkpoint in ("best.pt", "last.pt"):
        if (folder / checkpoint).exists():
            state = torch.load(folder / checkpoint, weights_only=True)
            assert state["epoch"] >= 1 and "model" in state
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    if final == "crashed" and (folder / "last.pt").exists():
        with RunStore(project / "trainings" / "vml.db") as store:
            row = store.run_by_name(name)
            hyper = {**row["hyperparameters"], "epochs": row["epoch"] + 1}
            store.update_run(
                row["id"], epochs=row["epoch"] + 1, hyperparameters=json.dumps(hyper, sort_keys=True)
            )
        resumed = ml("resume", name, cwd=project)
        assert resumed.returncode == 0, resumed.stderr


def fake_running(project: Path, name: str, **fields: Any) -> None:
    """A run row that claims to be running, as a worker would have left it."""
    (project / "trainings" / name).mkdir(parents=True)
    with RunStore(project / "trainings" / "vml.db") as store:
        store.create_run(name, "mlp", {"epochs": 1}, epochs=1, **fields)


def test_a_reused_pid_does_not_keep_a_dead_run_alive(project: Path) -> None:
    me = psutil.Process()
    old = "2026-01-01T00:00:00.000+00:00"

    fake_running(
        project, "reused", pid=me.pid, host=this_host(), pid_started=me.create_time() - 3600, heartbeat=old
    )
    fake_running(project, "alive", pid=me.pid, host=this_host(), pid_started=me.create_time(), heartbeat=old)
    fake_running(project, "fresh", pid=2**22 + 7, host=this_host(), heartbeat=utcnow())
    fake_running(project, "remote-stale", pid=1, host="elsewhere", heartbeat=old)
    fake_running(project, "remote-fresh", pid=1, host="elsewhere", heartbeat=utcnow())
    states = {r["instance"]: r["status"] for r in api.Project(project).list_runs()}
    assert states == {
        "reused": "crashed",  # its pid now belongs to a process started later
        "alive": "running",
        "fresh": "running",  # a dead pid, but its heartbeat is seconds old
        "remote-stale": "crashed",
        "remote-fresh": "running",
    }


def test_cancel_and_delete_of_runs_in_every_state(project: Path, ml) -> None:
    with RunStore(project / "trainings" / "vml.db") as store:
        (project / "trainings" / "waiting").mkdir(parents=True)
        store.create_run("waiting", "mlp", {"epochs": 1}, status="queued", epochs=1)
    cancelled = ml("cancel", "waiting", cwd=project)
    assert (cancelled.returncode, cancelled.stdout) == (0, "waiting: cancelled\n")
    assert train_here(project, "--epochs=1", name="done") == "finished"
    finished = ml("cancel", "done", cwd=project)
    assert (finished.returncode, finished.stderr) == (0, "done: already finished; nothing to cancel\n")

    name = slow_epochs(ml, project)
    refused = ml("delete", name, "--yes", cwd=project)
    assert refused.returncode == 4
    assert refused.stderr == f"ml: error: run {name!r} is running (cancel it first, or use --force)\n"
    assert (project / "trainings" / name).is_dir()
    forced = ml("delete", name, "--yes", "--force", cwd=project)
    assert (forced.returncode, forced.stdout) == (0, f"deleted {name}\n"), forced.stderr
    assert not (project / "trainings" / name).exists()
    assert name not in {r["name"] for r in api.Project(project).records()}
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute(
            "select count(*) from metrics m left join runs r on r.id = m.run_id where r.id is null"
        ).fetchone() == (0,)


def test_prune_lists_by_default_and_deletes_with_yes(project: Path, ml) -> None:
    for name in ("old-a", "old-b", "new-c"):
        assert train_here(project, "--epochs=1", name=name) == "finished"
    with RunStore(project / "trainings" / "vml.db") as store:
        for name in ("old-a", "old-b"):
            store.update_run(record(project, name)["id"], ended_at="2026-01-01T00:00:00.000+00:00")
    dry = ml("prune", "--older-than", "7d", cwd=project)
    assert dry.returncode == 0
    assert "2 run(s) would be deleted" in dry.stdout and "new-c" not in dry.stdout
    assert len(api.Project(project).records()) == 3
    done = ml("prune", "--older-than", "7d", "--yes", cwd=project)
    assert "deleted 2 run(s)" in done.stdout
    assert [r["name"] for r in api.Project(project).records()] == ["new-c"]
    bad = ml("prune", "--older-than", "soon", cwd=project)
    assert (bad.returncode, bad.stderr) == (
        2,
        "ml: error: --older-than 'soon' is not a duration like 30m, 12h, 7d or 2w\n",
    )


def test_wait_exits_1_when_a_run_did_not_finish(project: Path, ml) -> None:
    assert ml("train", "--epochs=1", "--name=good", cwd=project).returncode == 0
    assert (
        ml(
            "train", "--optimizer=sgd", "--learning-rate=10", "--epochs=5", "--name=bad", cwd=project
        ).returncode
        == 1
    )
    result = ml("wait", "good", "bad", cwd=project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("good: finished, test_acc ")
    assert lines[1].startswith("bad: failed: the loss became")


def test_an_ambiguous_prefix_lists_the_matches(project: Path, ml) -> None:
    for name in ("swift-a", "swift-b"):
        assert train_here(project, "--epochs=1", name=name) == "finished"
    result = ml("show", "swift", cwd=project)
    assert (result.returncode, result.stderr) == (
        2,
        "ml: error: 'swift' matches 2 runs: swift-a, swift-b (type more of the name)\n",
    )


def test_eight_detached_runs_with_readers_never_see_a_locked_database(project: Path, ml) -> None:
    epochs, steps = 1, 23
    names = [detach(ml, project, f"--epochs={epochs}", "--log-every=1", f"--name=load-{i}") for i in range(8)]
    outputs = []
    while any(status_of(project, n) in ("queued", "running") for n in names):
        for args in (("list",), ("show", names[0])):
            result = ml(*args, cwd=project)
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout + result.stderr)
    assert [status_of(project, n) for n in names] == ["finished"] * 8
    for name in names:
        outputs.append((project / "trainings" / name / "worker.txt").read_text())
        outputs.append((project / "trainings" / name / "log.txt").read_text())
    assert not [o for o in outputs if "locked" in o]
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        for name in names:
            run_id = record(project, name)["id"]
            (step_points,) = db.execute(
                "select count(*) from metrics where run_id = ? and key in ('step_loss', 'lr')", [run_id]
            ).fetchone()
            (epoch_points,) = db.execute(
                "select count(*) from metrics where run_id = ? and key in ('loss', 'acc', 'val_loss', 'val_acc')",
                [run_id],
            ).fetchone()
            assert (step_points, epoch_points) == (2 * epochs * steps, 4 * epochs), name


def test_names_come_from_a_private_generator(project: Path) -> None:
    import random

    from vml.names import generate_name

    random.seed(7)
    first = [generate_name() for _ in range(3)]
    random.seed(7)
    assert [generate_name() for _ in range(3)] != first


def test_a_rejected_detached_run_records_nothing(project: Path, ml) -> None:
    result = ml("train", "--detach", "--epochs=0", cwd=project)
    assert result.returncode == 2
    assert result.stderr.startswith("ml: error: invalid value --epochs=0")
    assert api.Project(project).records() == []
    assert not (project / "trainings").exists() or not any((project / "trainings").iterdir())


def test_cancelling_a_run_whose_worker_is_still_starting(project: Path, ml) -> None:
    name = detach(ml, project, "--epochs=50")
    result = ml("cancel", name, cwd=project)
    assert (result.returncode, result.stdout) == (0, f"{name}: cancelled\n"), result.stderr
    row = record(project, name)
    assert row["status"] == "cancelled"
    wait_for(
        lambda: (
            not psutil.pid_exists(row["pid"]) or psutil.Process(row["pid"]).status() == psutil.STATUS_ZOMBIE
        ),
        "the worker to exit",
        deadline=30,
    )
    assert status_of(project, name) == "cancelled"


def test_parallel_first_opens_migrate_the_store_once(tmp_path: Path) -> None:
    # Eight processes open a store that does not exist yet, at the same moment.
    code = (
        "import sys; from pathlib import Path; from vml.store import RunStore\n"
        "with RunStore(Path(sys.argv[1])) as store:\n"
        "    store.create_run(sys.argv[2], 'mlp', {})\n"
    )
    db = tmp_path / "trainings" / "vml.db"
    starters = [
        subprocess.Popen([sys.executable, "-c", code, str(db), f"run-{i}"], stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    errors = [p.communicate(timeout=DEADLINE)[1] for p in starters]
    assert [p.returncode for p in starters] == [0] * 8, errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("select count(*) from runs").fetchone() == (8,)
        assert conn.execute("pragma journal_mode").fetchone() == ("wal",)
