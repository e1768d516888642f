"""Training knobs as hyperparameters: optimizers, losses, schedules, early stopping,
gradient clipping, kept checkpoints, and a loss that blows up."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest
import torch

from vml import api
from vml.params import OPTIMIZERS


def train(project: Path, *args: str, name: str):
    out = io.StringIO()
    result = api.Project(project).train_in_process(list(args), name=name, stderr=out)
    return result, out.getvalue()


def lrs(project: Path, name: str) -> list[float]:
    """The learning rate printed on each epoch's last step line."""
    log = (project / "trainings" / name / "log.txt").read_text().splitlines()
    return [float(line.rsplit("lr:", 1)[1]) for line in log if "step:[   23/   23]" in line]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(project: Path, optimizer: str) -> None:
    lr = "0.05" if optimizer in ("sgd", "momentum") else "0.003"
    result, out = train(
        project, "--epochs=3", f"--optimizer={optimizer}", f"--learning-rate={lr}", name=optimizer
    )
    assert result.status == "finished", out
    assert result.test_acc > 0.8, (optimizer, result.test_acc)


@pytest.mark.parametrize("loss", ["mse", "l1", "smooth-l1"])
def test_regression_losses_train_on_the_digit_values(project: Path, loss: str) -> None:
    result, out = train(project, "--epochs=2", f"--loss={loss}", name=loss)
    assert result.status == "finished", out
    assert result.test_acc is None and result.test_loss < 10


def test_step_schedule_drops_the_learning_rate(project: Path) -> None:
    train(project, "--epochs=4", "--lr-schedule=step", "--lr-step-epochs=2", "--lr-gamma=0.5", name="step")
    assert lrs(project, "step") == [0.001, 0.001, 0.0005, 0.0005]


def test_warmup_and_cosine_schedules(project: Path) -> None:
    train(project, "--epochs=3", "--lr-schedule=warmup", "--warmup-epochs=3", name="warm")
    assert lrs(project, "warm") == pytest.approx([0.00033, 0.00067, 0.001], abs=1e-5)
    train(project, "--epochs=4", "--lr-schedule=cosine", name="cos")
    rates = lrs(project, "cos")
    assert rates[0] == 0.001 and rates == sorted(rates, reverse=True) and rates[-1] < 0.0002


def test_early_stopping_ends_a_run_that_stopped_improving(project: Path) -> None:
    result, out = train(
        project, "--epochs=200", "--early-stopping-patience=2", "--monitor=val_loss", name="early"
    )
    assert result.status == "finished"
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        epoch, best_epoch = db.execute("select epoch, best_epoch from runs where name='early'").fetchone()
        (event,) = db.execute("select message from events where kind='early-stopped'").fetchone()
    assert epoch == best_epoch + 2 < 200
    assert f"after epoch {epoch}" in event and event in out


def test_keep_checkpoints_keeps_the_last_epochs(project: Path) -> None:
    train(project, "--epochs=5", "--keep-checkpoints=2", name="kept")
    folder = project / "trainings" / "kept"
    assert sorted(p.name for p in folder.glob("epoch-*.pt")) == ["epoch-4.pt", "epoch-5.pt"]
    assert torch.load(folder / "epoch-5.pt", weights_only=True)["epoch"] == 5


def test_a_loss_that_blows_up_fails_the_run_and_keeps_best(project: Path, ml) -> None:
    result = ml("train", "--optimizer=sgd", "--learning-rate=10", "--epochs=5", "--name=boom", cwd=project)
    assert result.returncode == 1
    assert "boom: failed: the loss became" in result.stdout and "--learning-rate" in result.stdout
    assert "Traceback" not in result.stderr
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        status, error, epoch, step = db.execute(
            "select status, error, epoch, step from runs where name='boom'"
        ).fetchone()
    assert status == "failed" and error.startswith("the loss became")
    # The row says where it failed, not where progress was last flushed.
    failed_at = re.search(r"at epoch (\d+), step (\d+)", error)
    assert (epoch, step) == (int(failed_at[1]) - 1, int(failed_at[2]))
    best = project / "trainings" / "boom" / "best.pt"
    assert torch.load(best, weights_only=True)["epoch"] >= 1


def test_gradient_clipping_tames_a_large_learning_rate(project: Path) -> None:
    wild, _ = train(project, "--optimizer=sgd", "--learning-rate=10", "--epochs=3", name="wild")
    clipped, out = train(
        project, "--optimizer=sgd", "--learning-rate=10", "--epochs=3", "--grad-clip=0.1", name="clipped"
    )
    assert wild.status == "failed"
    assert clipped.status == "finished", out


def test_mixed_precision_on_cpu_says_it_trains_in_float32(project: Path) -> None:
    result, out = train(project, "--mixed-precision=true", "--epochs=1", "--device=cpu", name="amp")
    assert result.status == "finished"
    assert "--mixed-precision applies on CUDA only: training in float32 on cpu" in out
