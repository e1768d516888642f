"""Learning-rate schedules, stepped once per epoch."""

from __future__ import annotations

import math
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


def stretch_schedule(checkpoint: dict[str, Any], hparams: dict[str, Any]) -> None:
    """Fit the schedule saved in ``checkpoint`` (a ``last.pt``) to a new total of
    ``hparams["epochs"]``. Cosine annealing is spread over the new total: the epochs
    still to run get the rates a run started with that total has at those epochs
    (left as it was, it would climb back up after the old total). The other schedules
    do not depend on the total and go on unchanged."""
    if hparams["lr_schedule"] != "cosine":
        return
    state, total = checkpoint["scheduler"], hparams["epochs"]
    state["T_max"] = total
    done, low = state["last_epoch"], state["eta_min"]
    rates = [low + (base - low) * (1 + math.cos(math.pi * done / total)) / 2 for base in state["base_lrs"]]
    # The scheduler steps on from the optimizer's current rate, so that is set too.
    state["_last_lr"] = rates
    for group, rate in zip(checkpoint["optimizer"]["param_groups"], rates, strict=True):
        group["lr"] = rate


class StepSchedule(Callback):
    """Advance the schedule after each epoch."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.scheduler.step()
