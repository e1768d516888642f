"""Writes a run's progress and per-epoch metrics to the store, batched so logging
never slows the loop: progress about once a second, metrics at each epoch end."""

from __future__ import annotations

import time

from vml.store import RunStore
from vml.store.runs import utcnow
from vml.train.callbacks import Callback
from vml.train.checkpoint import BestCheckpoint
from vml.train.loop import Trainer

EPOCH_METRICS = ("loss", "acc", "val_loss", "val_acc")
FLUSH_SECONDS = 1.0


class StoreRecorder(Callback):
    """Keeps the run's row current: epoch, step, heartbeat, best metric, metrics."""

    def __init__(self, store: RunStore, run_id: int, best: BestCheckpoint) -> None:
        self.store = store
        self.run_id = run_id
        self.best = best
        self._last_flush = time.monotonic()

    def on_step_end(self, trainer: Trainer) -> None:
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_SECONDS:
            self._last_flush = now
            self.store.update_run(self.run_id, epoch=trainer.epoch, step=trainer.step, heartbeat=utcnow())

    def on_epoch_end(self, trainer: Trainer) -> None:
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
            heartbeat=now,
            best_metric=self.best.best,
            best_epoch=self.best.best_epoch,
        )
        self._last_flush = time.monotonic()
