"""Learning-rate schedules, stepped once per epoch."""

from __future__ import annotations

from typing import Any

import torch

from vml.train.callbacks import Callback
from vml.train.loop import Trainer


def build_schedule(
    optimizer: torch.optim.Optimizer, hparams: dict[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler named by ``lr_schedule`` (``constant`` keeps the rate)."""
    kind = hparams["lr_schedule"]
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, hparams["lr_step_epochs"], hparams["lr_gamma"])
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hparams["epochs"])
    if kind == "warmup":
        warmup = hparams["warmup_epochs"]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: min(1.0, (epoch + 1) / warmup))
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class StepSchedule(Callback):
    """Advance the schedule after each epoch."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.scheduler.step()
