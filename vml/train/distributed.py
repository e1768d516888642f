"""One run on several GPUs (or CPU processes): ``ml train --gpus N`` starts the worker
through ``torchrun``, each process trains a share of every batch, and
DistributedDataParallel averages the gradients.

Only rank 0 records: it claims the run, writes the store, the log and the
checkpoints. The other ranks read the run's row, train in lockstep and write nothing
but a scratch folder that is removed at the end (``Follower`` is their store). NCCL on
CUDA, gloo on the CPU. The processes are started in ``vml.launch.worker``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: torch.device) -> torch.device:
    """Each process of a CUDA run on its own GPU (``LOCAL_RANK``)."""
    if device.type == "cuda" and world()[1] > 1:
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def agree_to_stop(stop_reason: str | None) -> str | None:
    """Every rank stops together: the most serious reason any rank has (failed over
    any other stop), or None when all go on. One collective a step."""
    codes = {None: 0, "failed": 2}
    flag = torch.tensor([codes.get(stop_reason, 1)])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    agreed = int(flag.item())
    if agreed == 0 or stop_reason is not None:
        return stop_reason
    return "failed" if agreed == 2 else "cancelled"


class Follower:
    """The store of ranks other than 0 (a ``vml.store.RunRecords``): the run's row
    as read once, and writes that go nowhere."""

    path = None

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        return {**self._row, "status": "queued"} if name == self._row["name"] else None

    def set_status(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def cancel_requested(self, run_id: int) -> bool:
        return False  # rank 0 hears it, and every rank stops with it (agree_to_stop)

    def update_run(self, *args: Any, **kwargs: Any) -> None:
        pass

    add_metric_points = add_metrics = add_event = delete_metrics_after = update_run
