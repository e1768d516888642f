"""Writes a run's progress and metrics to the store, batched so logging never slows
the loop: each step's loss and learning rate are kept in memory and written with the
progress about once a second; the epoch's metrics at each epoch end."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from vml.store import RunRecords
from vml.store.runs import EPOCH_METRICS, utcnow
from vml.train.callbacks import Callback
from vml.train.checkpoint import BestCheckpoint
from vml.train.loop import Trainer

FLUSH_SECONDS = 1.0


class StoreRecorder(Callback):
    """Keeps the run's row current (epoch, step, best metric) and its metrics."""

    def __init__(self, store: RunRecords, run_id: int, best: BestCheckpoint) -> None:
        self.store = store
        self.run_id = run_id
        self.best = best
        # The first step is written at once, as LogLines prints its first line at
        # once: a live view shows the run moving, and a store that cannot be written
        # (a full disk) stops the run at its first step rather than a second later.
        self._last_flush = -math.inf
        self._points: list[tuple[int, int, float, float, float]] = []

    def on_step_end(self, trainer: Trainer) -> None:
        self._points.append((trainer.epoch + 1, trainer.global_step, trainer.loss, trainer.lr, time.time()))
        now = time.monotonic()
        # Not on an epoch's last step: the row would then say "epoch k, step N of N"
        # before epoch k+1 is counted, and progress would step back until on_epoch_end.
        if now - self._last_flush >= FLUSH_SECONDS and trainer.step != trainer.steps_per_epoch:
            self._last_flush = now
            self._flush_points()
            self.store.update_run(self.run_id, epoch=trainer.epoch, step=trainer.step)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self._flush_points()
        now = utcnow()
        self.store.add_metrics(
            {
                "run_id": self.run_id,
                "key": key,
                "epoch": trainer.epoch,
                "step": trainer.global_step,
                "value": trainer.logs[key],
                "time": now,
            }
            for key in EPOCH_METRICS
            if key in trainer.logs
        )
        self.store.update_run(
            self.run_id,
            epoch=trainer.epoch,
            step=trainer.steps_per_epoch,
            best_metric=self.best.best,
            best_epoch=self.best.best_epoch,
        )
        self._last_flush = time.monotonic()

    def on_train_end(self, trainer: Trainer) -> None:
        self._flush_points()

    def _flush_points(self) -> None:
        rows = []
        second, prefix = None, ""
        for epoch, step, loss, lr, when in self._points:
            # Formatting a datetime per point would cost a third of the write: the
            # seconds are formatted once per second, the milliseconds appended.
            if int(when) != second:
                second = int(when)
                prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            stamp = f"{prefix}.{int(when * 1000) % 1000:03d}+00:00"
            rows += [
                (self.run_id, "step_loss", epoch, step, loss, stamp),
                (self.run_id, "lr", epoch, step, lr, stamp),
            ]
        self._points.clear()
        self.store.add_metric_points(rows)
