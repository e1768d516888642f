"""What the dashboard reads each second: runs re-read only when they change, metric
histories of ended runs kept, on a real store."""

from __future__ import annotations

import shutil
from pathlib import Path

from vml import api
from vml.live import LiveRuns, MetricHistories, metric_names
from vml.liveness import host
from vml.store import RunStore
from vml.store.runs import utcnow


def record(project: Path, name: str, status: str = "finished") -> int:
    """A run recorded as the trainer records one, with its folder."""
    with RunStore(api.Project(project).db_path) as store:
        run_id = store.create_run(name, "mlp", {"learning_rate": 0.01}, status=status, epochs=2, steps=10)
        if status != "running":
            store.update_run(run_id, ended_at=utcnow(), epoch=2, step=10, test_acc=0.9)
    (project / "trainings" / name).mkdir(exist_ok=True)
    return run_id


def test_a_refresh_shows_new_changed_deleted_and_removed_runs(project: Path) -> None:
    first = record(project, "first")
    record(project, "second")
    live = LiveRuns(api.Project(project))
    assert live.refresh() is True
    assert [r["instance"] for r in live.runs] == ["second", "first"]
    before = {r["instance"]: r for r in live.runs}

    assert live.refresh() is False  # nothing changed: the same dicts, nothing re-read
    assert all(r is before[r["instance"]] for r in live.runs)

    with RunStore(api.Project(project).db_path) as store:
        store.update_run(first, test_acc=0.95)  # ml test on an ended run
    record(project, "third")
    assert live.refresh() is True
    runs = {r["instance"]: r for r in live.runs}
    assert list(runs) == ["third", "second", "first"]
    assert runs["first"]["test_acc"] == 0.95
    assert runs["second"] is before["second"]

    shutil.rmtree(project / "trainings" / "second")
    live.refresh()
    assert {r["instance"]: r["status"] for r in live.runs}["second"] == "deleted"

    with RunStore(api.Project(project).db_path) as store:
        store.delete_run(first)
    live.refresh()
    assert [r["instance"] for r in live.runs] == ["third", "second"]


def test_a_run_whose_process_died_shows_crashed(project: Path) -> None:
    run_id = record(project, "ghost", status="running")
    with RunStore(api.Project(project).db_path) as store:
        # No process has this pid; the heartbeat is a minute old.
        store.update_run(
            run_id,
            pid=2**22 + 7,
            host=host(),
            heartbeat="2026-01-01T00:00:00+00:00",
        )
    live = LiveRuns(api.Project(project))
    live.refresh()
    assert live.runs[0]["status"] == "crashed"


def test_an_ended_runs_history_is_read_once_a_live_runs_every_time(project: Path) -> None:
    ended = record(project, "ended")
    running = record(project, "running", status="running")
    with RunStore(api.Project(project).db_path) as store:
        for run_id in (ended, running):
            store.add_metrics(
                {"run_id": run_id, "key": key, "epoch": 1, "step": 10, "value": 0.5, "time": utcnow()}
                for key in ("loss", "val_loss", "acc")
            )
    live = LiveRuns(api.Project(project))
    live.refresh()
    runs = {r["instance"]: r for r in live.runs}
    histories = MetricHistories(api.Project(project))
    for _ in range(3):
        assert len(histories.points(runs["ended"])) == 3
        assert len(histories.points(runs["running"])) == 3
    assert histories.reads == 1 + 3

    with RunStore(api.Project(project).db_path) as store:
        store.update_run(ended, ended_at="2026-11-24T12:00:00+00:00")  # resumed and ended again
    live.refresh()
    histories.points({r["instance"]: r for r in live.runs}["ended"])
    assert histories.reads == 5


def test_metric_names_match_a_name_a_glob_or_a_part() -> None:
    points = [{"key": k} for k in ("loss", "acc", "val_loss", "val_acc", "step_loss", "lr")]
    assert metric_names(points) == ["loss", "acc", "val_loss", "val_acc", "step_loss", "lr"]
    assert metric_names(points, "val_*") == ["val_loss", "val_acc"]
    assert metric_names(points, "loss") == ["loss", "val_loss", "step_loss"]
    assert metric_names(points, "*acc") == ["acc", "val_acc"]
    assert metric_names(points, "nothing") == []
