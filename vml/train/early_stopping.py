"""Stop when the monitored validation metric stops improving."""

from __future__ import annotations

import math

from vml.train.callbacks import Callback
from vml.train.loop import Trainer


class EarlyStopping(Callback):
    """After ``patience`` epochs in which ``monitor`` did not improve by more than
    ``delta``, ask the loop to stop. Runs after the checkpoint callbacks."""

    def __init__(self, monitor: str, patience: int, delta: float) -> None:
        self.monitor = monitor
        self.patience = patience
        self.delta = delta
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.best = -math.inf
        self.waited = 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        score = self.sign * trainer.logs[self.monitor]
        if score > self.best + self.delta:
            self.best, self.waited = score, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.stop_reason = "early-stopped"

    def state_dict(self) -> dict:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.waited = state["best"], state["waited"]
