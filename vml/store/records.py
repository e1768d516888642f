"""What a worker writes its run to, written down once.

Three things have this shape: the project's ``RunStore`` (SQLite, a local worker), a
Ray task's ``Relay`` (``vml.launch.ray``: it sends each write to the driver, which
writes the store) and a non-zero rank's ``Follower`` (``vml.train.distributed``: its
writes go nowhere, rank 0 records). The training code (``vml.train``, the heartbeat)
takes any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol


class RunRecords(Protocol):
    """A run's record as a worker reads and writes it."""

    path: Path | None  # the SQLite file, when there is one to open again in another thread

    def __enter__(self) -> RunRecords: ...

    def __exit__(self, *exc: object) -> None: ...

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        """The run's row (hyperparameters decoded), or None."""

    def set_status(self, run_id: int, status: str, expect: Iterable[str], **fields: Any) -> bool:
        """Move the run to ``status`` only while it is in one of ``expect``."""

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set fields of the run's row (progress, heartbeat, results)."""

    def add_metric_points(self, points: list[tuple[int, str, int, int, float, str]]) -> None:
        """Append ``(run_id, key, epoch, step, value, time)`` points."""

    def add_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append metric rows given as mappings."""

    def add_event(self, run_id: int, kind: str, message: str) -> None:
        """Append an event (resumed, early-stopped, cancel-requested...)."""

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        """Drop points past global step ``step`` (a resumed run logs them again)."""

    def cancel_requested(self, run_id: int) -> bool:
        """Whether someone asked the run to stop (``ml cancel`` from another host)."""
