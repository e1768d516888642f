"""Checkpoints: written to a temporary file, fsynced, renamed; loaded weights-only."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vml.atomic import fsync_dir, shared_mode
from vml.config import monitor_direction
from vml.errors import disk_full, is_disk_full
from vml.paths import BEST, LAST
from vml.train.callbacks import Callback
from vml.train.loop import Trainer


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomically replace ``path`` with ``state``; a crash leaves the old file whole. A
    full disk leaves the old file and no temporary one, and raises ``DiskFullError``."""
    tmp = writer = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            writer = TorchWriter(handle)
            writer.save(torch.save, state)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, shared_mode())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            needed = max(tensor_bytes(state), writer.attempted if writer is not None else 0)
            raise disk_full(path, needed) from exc
        raise


class TorchWriter:
    """The file ``torch.save`` (or ``torch.export.save``) writes through: it keeps the
    OSError that their zip writer would only report as a bad position, and counts the
    bytes it was given."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.attempted = 0
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        self.attempted += memoryview(data).nbytes
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self.handle.flush()
        except OSError as exc:
            self.error = exc
            raise

    def save(self, saver: Callable[[Any, Any], None], value: Any) -> None:
        """``saver(value, self)``; an OSError of the file is raised as itself. (torch's
        zip writer turns a failed write into "RuntimeError: [enforce fail at
        inline_container.cc:672] . unexpected pos 704 vs 598".)"""
        try:
            saver(value, self)
        except Exception as exc:
            if self.error is None or self.error is exc:
                raise
            raise self.error from exc


def tensor_bytes(value: Any, seen: set[int] | None = None) -> int:
    """The bytes of the tensors in ``value`` (each storage once): about the size of
    its checkpoint."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(value, dict):
        return sum(tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in value)
    return 0


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def is_improvement(value: float, best: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``best``; NaN never does."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


class BestCheckpoint(Callback):
    """Save ``best.pt`` whenever the monitored validation metric improves."""

    def __init__(self, folder: Path, monitor: str, extra: dict[str, Any]) -> None:
        self.path = folder / BEST
        self.monitor = monitor
        self.mode = "min" if monitor_direction(monitor) == "minimize" else "max"
        self.extra = extra
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        value = trainer.logs[self.monitor]
        if not is_improvement(value, self.best, self.mode):
            return
        self.best, self.best_epoch = value, trainer.epoch
        save_checkpoint(
            {
                "model": trainer.model.state_dict(),
                "epoch": trainer.epoch,
                "monitor": self.monitor,
                "metric": value,
                **self.extra,
            },
            self.path,
        )
        trainer.logs["is_best"] = True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EpochCheckpoints(Callback):
    """Keep the weights of the last ``keep`` epochs as ``epoch-N.pt``."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.keep = keep

    def on_epoch_end(self, trainer: Trainer) -> None:
        save_checkpoint(
            {"model": trainer.model.state_dict(), "epoch": trainer.epoch},
            self.folder / f"epoch-{trainer.epoch}.pt",
        )
        (self.folder / f"epoch-{trainer.epoch - self.keep}.pt").unlink(missing_ok=True)


class LastCheckpoint(Callback):
    """Save ``last.pt`` (weights, optimizer, schedule, epoch, RNG) after every epoch,
    for resume."""

    def __init__(self, folder: Path, scheduler: Any, extra: dict[str, Any]) -> None:
        self.path = folder / LAST
        self.scheduler = scheduler
        self.extra = extra

    def on_epoch_end(self, trainer: Trainer) -> None:
        callbacks = {type(c).__name__: c.state_dict() for c in trainer.callbacks if c.state_dict()}
        save_checkpoint(
            {
                "model": trainer.model.state_dict(),
                "optimizer": trainer.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "callbacks": callbacks,
                "global_step": trainer.global_step,
                "epoch": trainer.epoch,
                "rng": torch.get_rng_state(),
                "shuffle_rng": trainer.generator.get_state(),
                **self.extra,
            },
            self.path,
        )


def restore(trainer: Trainer, scheduler: Any, state: dict[str, Any]) -> None:
    """Put a trainer back where ``last.pt`` left it."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    trainer.epoch = state["epoch"]
    trainer.global_step = state["global_step"]
    torch.set_rng_state(state["rng"])
    trainer.generator.set_state(state["shuffle_rng"])
    for callback in trainer.callbacks:
        saved = state["callbacks"].get(type(callback).__name__)
        if saved:
            callback.load_state_dict(saved)
