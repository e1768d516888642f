"""The training loop: read it top to bottom. Batches are sliced from tensors already
on the device, so the loop adds nothing measurable to a hand-written one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vml.train.callbacks import Callback
from vml.train.distributed import agree_to_stop


def build_optimizer(
    name: str, params: Any, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimizer named by the ``optimizer`` hyperparameter."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_LOSSES: dict[str, LossFn] = {
    "cross-entropy": nn.functional.cross_entropy,
    # Regressions have one output per sample; the targets are a flat vector.
    "mse": lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y),
    "l1": lambda out, y: nn.functional.l1_loss(out.squeeze(-1), y),
    "smooth-l1": lambda out, y: nn.functional.smooth_l1_loss(out.squeeze(-1), y),
}


def loss_function(name: str) -> LossFn:
    """The mean loss named by the ``loss`` hyperparameter."""
    return _LOSSES[name]


@dataclass
class Tensors:
    """One split's features and targets (class indices or numbers), on the device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Tensors,
    loss_fn: LossFn = nn.functional.cross_entropy,
    classification: bool = True,
    batch_size: int = 1024,
) -> tuple[float, float | None]:
    """Mean loss of ``model`` on ``split``, and its accuracy (None for a regression)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        out = model(x)
        total_loss += loss_fn(out, y).item() * len(y)
        if classification:
            correct += (out.argmax(1) == y).sum().item()
    n = max(len(split), 1)
    return total_loss / n, correct / n if classification else None


@dataclass
class Trainer:
    """State of one training run, shared with the callbacks."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train: Tensors
    val: Tensors
    epochs: int
    batch_size: int
    generator: torch.Generator
    loss_fn: LossFn = nn.functional.cross_entropy
    classification: bool = True
    grad_clip: float = 0.0
    mixed_precision: bool = False
    callbacks: Sequence[Callback] = ()
    # Under torchrun: the DistributedDataParallel wrapper that trains ``model``, and
    # this process's (rank, world size); each rank trains its share of every batch.
    parallel: nn.Module | None = None
    shard: tuple[int, int] = (0, 1)
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    loss: float = math.nan
    logs: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    failure: str | None = None
    steps_per_epoch: int = field(init=False)

    def __post_init__(self) -> None:
        # Computed once: len() of a tensor is a Python call that costs microseconds
        # inside the loop, and callbacks read this every step.
        self.steps_per_epoch = math.ceil(len(self.train) / self.batch_size)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def fit(self) -> None:
        """Train for ``epochs`` epochs, validating after each; stops early when a
        callback sets ``stop_reason``."""
        self._call("on_train_start")
        try:
            self._epochs()
        finally:
            self._call("on_train_end")

    def _epochs(self) -> None:
        device_type = self.train.x.device.type
        # Loss scaling only matters (and only exists) for float16 on CUDA. When it is off,
        # the step below skips autocast and the scaler: even disabled, they cost ~25 us
        # a step, a few percent of a small model's step.
        amp = self.mixed_precision and device_type == "cuda"
        scaler = torch.amp.GradScaler(device_type) if amp else None
        net = self.parallel or self.model
        rank, world = self.shard
        while self.epoch < self.epochs and self.stop_reason is None:
            self.model.train()
            order = torch.randperm(len(self.train), generator=self.generator).to(self.train.x.device)
            total_loss, correct, seen = 0.0, 0, 0
            self.logs = {}
            self._call("on_epoch_start")
            for step in range(1, self.steps_per_epoch + 1):
                self.step = step
                index = order[(step - 1) * self.batch_size : step * self.batch_size]
                if world > 1 and len(index) >= world:
                    index = index[rank::world]
                x, y = self.train.x[index], self.train.y[index]
                self.optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    out = net(x)
                    loss = self.loss_fn(out, y)
                    self._backward_and_step(loss)
                else:
                    with torch.autocast(device_type):
                        out = net(x)
                        loss = self.loss_fn(out, y)
                    self._backward_and_step(loss, scaler)
                self.loss = loss.item()
                if not math.isfinite(self.loss):
                    self.failure = (
                        f"the loss became {self.loss} at epoch {self.epoch + 1}, step {step} "
                        "(try a lower --learning-rate, --grad-clip=1, or check the data for extreme values)"
                    )
                    self.stop_reason = "failed"
                else:
                    size = y.shape[0]
                    total_loss += self.loss * size
                    if self.classification:
                        correct += (out.argmax(1) == y).sum().item()
                    seen += size
                    self.global_step += 1
                    self._call("on_step_end")
                if world > 1:  # all ranks stop together, or a collective would wait forever
                    self.stop_reason = agree_to_stop(self.stop_reason)
                    if self.stop_reason == "failed" and self.failure is None:
                        self.failure = f"the loss became non-finite in another process at epoch {self.epoch + 1}, step {step}"
                if self.stop_reason is not None:
                    break
            if self.stop_reason is not None:
                break
            self.epoch += 1
            val_loss, val_acc = evaluate(self.model, self.val, self.loss_fn, self.classification)
            self.logs = {"loss": total_loss / seen, "val_loss": val_loss}
            if self.classification:
                self.logs |= {"acc": correct / seen, "val_acc": val_acc}
            self._call("on_epoch_end")

    def _backward_and_step(self, loss: torch.Tensor, scaler: torch.amp.GradScaler | None = None) -> None:
        if scaler is None:
            loss.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            return
        scaler.scale(loss).backward()
        if self.grad_clip:
            scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()

    def _call(self, hook: str) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self)
