"""The Python API scripts and notebooks use: ``vml.Project(path).train(...)`` starts a
real background worker and returns a ``vml.Run`` to watch, wait for, query and cancel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import vml
from vml import api
from vml.errors import NotFoundError, UsageError
from vml.store import RunStore

DEADLINE = 120  # seconds any one wait may take before the test fails
STEPS = 23  # optimizer steps per epoch: the digits training split in batches of 64


@dataclass
class Finished:
    project: vml.Project
    two: vml.Run  # 2 epochs, waited for with wait()
    two_info: dict[str, Any]
    quick: vml.Run  # 1 epoch, waited for with wait_async()
    quick_info: dict[str, Any]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """Two runs started with ``Project.train`` in background workers, waited for with
    ``wait`` and ``wait_async``."""
    root = api.create_project(tmp_path_factory.mktemp("api") / "demo")
    project = vml.Project(root)
    two = project.train(name="two", epochs=2, learning_rate=0.01)
    two_info = two.wait(poll=0.2, timeout=DEADLINE)
    quick = project.train(name="quick", epochs=1, learning_rate=0.02)
    quick_info = asyncio.run(quick.wait_async(poll=0.2, timeout=DEADLINE))
    return Finished(project, two, two_info, quick, quick_info)


def wait_until(condition, what: str, deadline: float = DEADLINE):
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if value := condition():
            return value
    raise AssertionError(f"not within {deadline} s: {what}")


def test_wait_returns_the_finished_runs_info(finished: Finished) -> None:
    info = finished.two_info
    assert info["instance"] == "two" and finished.two.name == "two"
    assert info["status"] == "finished" == finished.two.status()
    assert isinstance(info["test_acc"], float) and 0.85 <= info["test_acc"] <= 1.0
    assert info["test_loss"] > 0
    assert (info["epoch"], info["epochs"]) == (2, 2)
    assert info["hyperparameters"]["learning_rate"] == 0.01
    assert info["hyperparameters"]["epochs"] == 2
    assert Path(info["checkpoint"]) == finished.project.trainings_dir / "two" / "best.pt"
    assert Path(info["checkpoint"]).is_file()
    assert "epoch" in finished.two.logs()  # the worker wrote its progress to log.txt
    again = finished.two.info()  # a handle reads the store again
    assert {k: again[k] for k in info if k != "heartbeat"} == {k: info[k] for k in info if k != "heartbeat"}


def test_wait_async_returns_the_finished_runs_info(finished: Finished) -> None:
    info = finished.quick_info
    assert info["instance"] == "quick"
    assert info["status"] == "finished"
    assert isinstance(info["test_acc"], float) and 0.85 <= info["test_acc"] <= 1.0
    assert info["hyperparameters"]["learning_rate"] == 0.02
    assert (info["epoch"], info["epochs"]) == (1, 1)


def test_progress_of_a_finished_run_is_complete(finished: Finished) -> None:
    progress = finished.two.progress()
    assert progress == {
        "status": "finished",
        "percent": 100.0,
        "epoch": 2,
        "epochs": 2,
        "batch": STEPS,
        "batches": STEPS,
    }


def test_metrics_have_a_point_per_epoch_and_per_step(finished: Finished) -> None:
    val_acc = finished.two.metrics("val_acc")
    assert [(p["key"], p["epoch"], p["step"]) for p in val_acc] == [
        ("val_acc", 1, STEPS),
        ("val_acc", 2, 2 * STEPS),
    ]
    assert all(0.0 <= p["value"] <= 1.0 for p in val_acc)
    assert max(p["value"] for p in val_acc) == pytest.approx(finished.two_info["best_metric"])

    step_loss = finished.two.metrics("step_loss")
    assert [p["step"] for p in step_loss] == list(range(1, 2 * STEPS + 1))
    assert [p["epoch"] for p in step_loss] == [1] * STEPS + [2] * STEPS
    assert all(p["value"] > 0 for p in step_loss)
    # Training works: the last steps' loss is well below the first steps'.
    assert sum(p["value"] for p in step_loss[-5:]) < 0.5 * sum(p["value"] for p in step_loss[:5])

    everything = finished.two.metrics()
    assert {p["key"] for p in everything} == {"loss", "acc", "val_loss", "val_acc", "step_loss", "lr"}
    assert [p["value"] for p in everything if p["key"] == "lr"] == [0.01] * (2 * STEPS)


def test_runs_and_run_find_the_recorded_runs(finished: Finished) -> None:
    project = vml.Project(finished.project.root / "data")  # found from a subdirectory too
    assert project.root == finished.project.root

    done = project.runs(status="finished")
    assert all(isinstance(run, vml.Run) for run in done)
    assert [run.name for run in done] == ["quick", "two"]  # newest first
    assert [run.name for run in project.runs(where="test_acc>0.5")] == ["quick", "two"]
    assert [run.name for run in project.runs(where="epochs=2")] == ["two"]
    assert [run.name for run in project.runs(where=["learning_rate<0.015", "test_acc>0.5"])] == ["two"]
    assert [run.name for run in project.runs(status=["failed", "cancelled"])] == []

    last = project.run("@last")
    assert isinstance(last, vml.Run) and last.name == "quick"
    assert last.info()["test_acc"] == finished.quick_info["test_acc"]
    assert project.run("tw").name == "two"  # a unique prefix
    with pytest.raises(NotFoundError, match="did you mean two"):
        project.run("tow")
    with pytest.raises(UsageError, match="did you mean test_acc"):
        project.runs(where="test_ac>0.5")
    with pytest.raises(UsageError, match="'bogus'"):
        project.runs(status="bogus")


def test_train_returns_while_the_run_goes_on_and_cancel_keeps_best(project: Path) -> None:
    # 200 epochs take far longer than this test waits: every check below happens
    # while the worker is still busy, whatever the machine's speed.
    run = vml.Project(project).train(name="long", epochs=200, learning_rate=0.01)
    try:
        percents = check_a_long_run_then_cancel_it(run, project)
    finally:
        if run.status() in ("queued", "running"):  # a failed check leaves no worker behind
            run.cancel()
    # It never goes back (see test_progress_never_goes_back_when_a_flush_lands_on_an_epochs_last_step).
    assert percents == sorted(percents), sorted(set(percents))


def check_a_long_run_then_cancel_it(run: vml.Run, project: Path) -> list[float]:
    """The checks on the 200-epoch run; the percentages seen while it ran."""
    assert run.status() in ("queued", "running")

    with pytest.raises(TimeoutError, match="'long' is still"):
        run.wait(poll=0.2, timeout=0.5)
    with pytest.raises(TimeoutError):
        asyncio.run(run.wait_async(poll=0.2, timeout=0.5))

    async def wait_at_most_a_second() -> None:
        # Only times out if wait_async leaves the event loop free while it polls.
        await asyncio.wait_for(run.wait_async(poll=0.2), timeout=1.0)

    with pytest.raises(TimeoutError):
        asyncio.run(wait_at_most_a_second())

    percents: list[float] = []

    def an_epoch_ended() -> dict[str, Any] | None:
        progress = run.progress()
        percents.append(progress["percent"])
        return progress if (progress["epoch"] or 0) >= 1 else None

    progress = wait_until(an_epoch_ended, "the first epoch of 'long' ended")
    assert set(progress) == {"status", "percent", "epoch", "epochs", "batch", "batches"}
    assert progress["status"] == "running"
    assert (progress["epochs"], progress["batches"]) == (200, STEPS)
    assert 0.5 <= progress["percent"] < 100.0

    assert run.cancel() == "cancelled"
    assert run.status() == "cancelled"
    best = project / "trainings" / "long" / "best.pt"
    assert best.is_file()
    info = run.info()
    assert info["checkpoint"] == str(best)
    assert 1 <= info["epoch"] < 200
    after = run.progress()
    assert after["status"] == "cancelled" and after["percent"] < 100.0
    with pytest.raises(vml.RunFailed) as failed:
        run.wait(poll=0.2, timeout=DEADLINE)
    assert (failed.value.name, failed.value.status) == ("long", "cancelled")
    assert run.cancel() == "cancelled"  # cancelling an ended run changes nothing
    return percents


def test_progress_never_goes_back_when_a_flush_lands_on_an_epochs_last_step(project: Path) -> None:
    # The recorder writes (epochs done, step) about once a second and (epochs done,
    # steps) at each epoch's end. A write on an epoch's last step, before validation
    # has counted the epoch, would read as (0, STEPS): progress would drop to 0 %.
    from types import SimpleNamespace

    from vml.train.checkpoint import BestCheckpoint
    from vml.train.recorder import StoreRecorder

    handle = vml.Project(project)
    handle.trainings_dir.mkdir()
    (handle.trainings_dir / "mid").mkdir()
    with RunStore(handle.db_path) as store:
        run_id = store.create_run("mid", "mlp", handle.resolve({"epochs": 2}), epochs=2, steps=STEPS)
        recorder = StoreRecorder(store, run_id, BestCheckpoint(handle.trainings_dir / "mid", "val_acc", {}))
        trainer = SimpleNamespace(
            epoch=0, epochs=2, global_step=0, step=0, steps_per_epoch=STEPS, loss=1.0, lr=0.1
        )
        trainer.logs = {"loss": 1.0, "val_loss": 1.0}
        run = handle.run("mid")
        seen = []
        for _ in range(2):
            for step in range(1, STEPS + 1):
                trainer.step, trainer.global_step = step, trainer.global_step + 1
                recorder._last_flush = -1e9  # every step is due for a write
                recorder.on_step_end(trainer)
                seen.append(run.progress()["percent"])
            trainer.epoch += 1
            recorder.on_epoch_end(trainer)
            seen.append(run.progress()["percent"])
    assert seen == sorted(seen), seen  # a progress bar must not jump back
    assert seen[-1] == 100.0 and seen[STEPS] == 50.0


def test_wait_raises_run_failed_when_the_loss_blows_up(project: Path) -> None:
    handle = vml.Project(project)
    run = handle.train(optimizer="sgd", learning_rate=10, epochs=5)
    with pytest.raises(vml.RunFailed) as failed:
        run.wait(poll=0.2, timeout=DEADLINE)
    assert failed.value.status == "failed"
    assert failed.value.name == run.name
    assert "the loss became" in failed.value.error
    assert "--learning-rate" in str(failed.value)  # says what to try
    assert run.status() == "failed"
    assert [r.name for r in handle.runs(status="failed")] == [run.name]
    with pytest.raises(vml.RunFailed):
        asyncio.run(run.wait_async(poll=0.2, timeout=DEADLINE))


@pytest.mark.parametrize(
    ("overrides", "mentioned"),
    [
        ({"epochs": 0}, "epochs"),
        ({"bogus": 1}, "bogus"),
        ({"learning_rate": -1}, "learning"),
        ({"optimizer": "adamm"}, "adam"),
    ],
)
def test_bad_hyperparameters_raise_before_a_run_is_recorded(
    project: Path, overrides: dict[str, Any], mentioned: str
) -> None:
    handle = vml.Project(project)
    with pytest.raises(UsageError, match=mentioned):
        handle.train(**overrides)
    assert handle.runs() == []
    trainings = project / "trainings"
    assert not trainings.exists() or [p.name for p in trainings.iterdir() if p.is_dir()] == []
    with pytest.raises(NotFoundError, match="no runs yet"):
        handle.run("@last")
