"""Progress output: MindSpore-style lines (log files, pipes) and a rich bar (terminals)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from vml.train.callbacks import Callback
from vml.train.loop import Trainer

Sink = Callable[[str], None]
WRITE_SECONDS = 1.0
STEP_LINE = "Epoch:[{:3d}/{:3d}], step:[{:5d}/{:5d}], loss:[{:.3f}/{:.3f}], time:{:.3f} ms, lr:{:.5f}"


def epoch_summary(trainer: Trainer, epoch_ms: float) -> str:
    """The line printed after each epoch: time, training and validation metrics."""
    logs = trainer.logs
    best = " *best*" if logs.get("is_best") else ""
    return (
        f"Epoch:[{trainer.epoch:3d}/{trainer.epochs:3d}], epoch time: {epoch_ms:.3f} ms, "
        f"per step time: {epoch_ms / trainer.steps_per_epoch:.3f} ms, avg loss: {logs['loss']:.4f}"
        + "".join(f", {key}: {logs[key]:.4f}" for key in ("acc", "val_loss", "val_acc") if key in logs)
        + best
    )


class LogLines(Callback):
    """Step lines every ``log_every`` steps and a summary per epoch, in the form of
    MindSpore's LossMonitor: ``Epoch:[  1/ 20], step:[   10/   23], loss:[0.189/1.176],
    time:2.254 ms, lr:0.00100``. ``step_sinks`` get step lines, ``epoch_sinks`` the
    epoch summaries.

    Step lines are handed to the sinks in batches, at most about once a second (and
    before each summary and at the end): a write per line costs ~50 us, a few percent
    of a small model's step."""

    def __init__(self, step_sinks: list[Sink], epoch_sinks: list[Sink], log_every: int) -> None:
        self.step_sinks = step_sinks
        self.epoch_sinks = epoch_sinks
        self.log_every = log_every
        self._epoch_start = self._mark = time.perf_counter()
        self._loss_sum = 0.0
        self._since_mark = 0
        self._pending: list[tuple[int, int, int, int, float, float, float, float]] = []
        self._written = -math.inf

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._epoch_start = self._mark = time.perf_counter()
        self._loss_sum = 0.0
        self._since_mark = 0

    def on_step_end(self, trainer: Trainer) -> None:
        self._loss_sum += trainer.loss
        self._since_mark += 1
        if trainer.step % self.log_every and trainer.step != trainer.steps_per_epoch:
            return
        now = time.perf_counter()
        if self.step_sinks:
            per_step = (now - self._mark) * 1000 / self._since_mark
            # Formatted when written: a batch of lines formats faster than one at a time.
            self._pending.append(
                (trainer.epoch + 1, trainer.epochs, trainer.step, trainer.steps_per_epoch)
                + (trainer.loss, self._loss_sum / trainer.step, per_step, trainer.lr)
            )
            if now - self._written >= WRITE_SECONDS:
                self._write_pending(now)
        self._mark = time.perf_counter()
        self._since_mark = 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        now = time.perf_counter()
        self._write_pending(now)
        line = epoch_summary(trainer, (now - self._epoch_start) * 1000)
        for sink in self.epoch_sinks:
            sink(line)

    def on_train_end(self, trainer: Trainer) -> None:
        self._write_pending(time.perf_counter())

    def _write_pending(self, now: float) -> None:
        self._written = now
        if self._pending:
            text = "\n".join(STEP_LINE.format(*values) for values in self._pending)
            self._pending.clear()
            for sink in self.step_sinks:
                sink(text)


class ProgressBar(Callback):
    """A live bar on a terminal over the whole run: epoch, steps, loss, time left."""

    def __init__(self, stream: TextIO) -> None:
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self.task = self.progress.add_task("train", total=1, epoch="", loss=float("nan"))

    def print(self, line: str) -> None:
        """Print above the bar."""
        self.progress.console.print(line, highlight=False, markup=False)

    def on_train_start(self, trainer: Trainer) -> None:
        self.on_step_end(trainer)
        self.progress.start()

    def on_step_end(self, trainer: Trainer) -> None:
        self.progress.update(
            self.task,
            total=trainer.steps_per_epoch * trainer.epochs,
            completed=trainer.global_step,
            epoch=f"{trainer.epoch + 1}/{trainer.epochs}",
            loss=trainer.loss,
        )

    def on_train_end(self, trainer: Trainer) -> None:
        self.progress.stop()
