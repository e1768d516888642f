"""A built model tried on a small batch of the data before a run is recorded: a
forward that does not fit the data, or scores of the wrong shape, is bad input named
by its shapes, not a traceback from inside training."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vml.errors import UsageError

HELP = "ml help models"


def check_fits(model: nn.Module, batch: torch.Tensor, task: str, num_classes: int, name: str) -> None:
    """Run ``model`` on ``batch`` (two samples, on the model's device) in eval mode
    without gradients; ``UsageError`` unless it returns float scores of shape
    ``(batch, num_classes)`` (a regression: ``(batch, 1)`` or ``(batch,)``). The
    model's mode and the random state are left as they were."""
    shape = _shape(batch.shape)
    what = f"model {name} does not fit the data: its forward on a batch of shape {shape}"
    trace = _Trace(model)
    was_training = model.training
    cuda = batch.device.type == "cuda"
    devices = (
        [torch.cuda.current_device() if batch.device.index is None else batch.device.index] if cuda else []
    )
    threads = torch.get_num_threads()
    # Two samples are too little to share out, and on a busy 2-core machine two CPU
    # threads waited on each other: the cnn's check took 40-99 ms there, 4-5 ms on one.
    torch.set_num_threads(1)
    try:
        # A forward that draws random numbers must not shift the seeded run.
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            model.eval()
            out = model(batch)
    except Exception as exc:
        where, fix = trace.explain(shape)
        raise UsageError(f"{what} failed{where}: {_reason(exc)} ({fix}; {HELP})") from None
    finally:
        torch.set_num_threads(threads)
        trace.remove()
        model.train(was_training)
    rows = batch.shape[0]
    if task == "classification":
        wanted, fits = f"({rows}, {num_classes})", [(rows, num_classes)]
        need = f"{num_classes} classes need {wanted}"
        fix = f"make its last layer give num_classes = {num_classes} outputs"
    else:
        wanted, fits = f"({rows}, 1) or ({rows},)", [(rows, 1), (rows,)]
        need = f"a regression needs {wanted}"
        fix = "make its last layer give num_classes = 1 output"
    if not isinstance(out, torch.Tensor):
        kind = type(out).__name__
        raise UsageError(
            f"{what} returned a {kind}, not a tensor (return one tensor of shape {wanted}; {HELP})"
        )
    if tuple(out.shape) not in fits:
        raise UsageError(f"{what} returned shape {_shape(out.shape)}, but {need} ({fix}; {HELP})")
    if not out.is_floating_point():
        raise UsageError(f"{what} returned {out.dtype} values (return float scores; {HELP})")


class _Trace:
    """Which module a failing forward was in: each module's call is pushed as it
    starts and popped as it returns, so after an error the innermost one is on top."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[tuple[str, nn.Module, Any]] = []
        self.first_leaf: nn.Module | None = None
        self.handles = []
        try:
            for qualified, module in model.named_modules():
                self.handles.append(module.register_forward_pre_hook(self._enter(qualified)))
                self.handles.append(module.register_forward_hook(self._leave))
        except RuntimeError:  # a TorchScript module takes no hooks: the error is told without its layer
            self.remove()
            self.stack, self.handles = [], []

    def _enter(self, qualified: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if self.first_leaf is None and not any(True for _ in module.children()):
                self.first_leaf = module
            self.stack.append((qualified, module, args[0] if args else None))

        return hook

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def explain(self, shape: str) -> tuple[str, str]:
        """Where the forward failed, as `` in layer 'x' (Linear(...))`` (empty when in
        the model's own forward), and the fix."""
        if len(self.stack) < 2:  # in the model's own forward, not one of its layers
            return "", f"fix its forward for input of shape {shape}"
        qualified, module, given = self.stack[-1]
        layer = "its first layer" if module is self.first_leaf else f"layer {qualified!r}"
        shown = repr(module) if "\n" not in repr(module) else type(module).__name__
        if not isinstance(given, torch.Tensor):
            return f" in {layer} ({shown})", f"fix {layer}"
        size = _shape(given.shape)
        where = f" in {layer} ({shown})" if size == shape else f" in {layer} ({shown}, given shape {size})"
        if isinstance(module, nn.Linear):
            if given.dim() > 2:
                features = math.prod(given.shape[1:])
                return (
                    where,
                    f"flatten the input before {layer}: nn.Flatten() gives {_count(features, 'feature')}",
                )
            return where, f"make {layer} take {_count(given.shape[-1], 'feature')}"
        if (
            isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
            and given.dim() == len(module.kernel_size) + 2
        ):
            if given.shape[1] != module.in_channels:
                return where, f"make {layer} take {_count(given.shape[1], 'channel')}"
        return where, f"make {layer} accept input of shape {size}"


def _reason(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [""]
    # TorchScript puts its own frame first and the error, as "RuntimeError: ...", last.
    text = lines[-1].removeprefix("RuntimeError: ") if "TorchScript" in lines[0] else lines[0]
    return text if type(exc) is RuntimeError else f"{type(exc).__name__}: {text}".rstrip(": ")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _shape(size: torch.Size | tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in size))
