"""Starting runs: worker processes, the local queue, Ray, sweeps and runs files.

A sweep's runs are recorded ``queued`` in the store first (``vml.launch.sweep``); a
backend then starts them and follows them until none is queued or running. A backend
is one module here with a class that has the shape of ``Backend``; ``backend_for``
picks the one a recorded sweep asks for. Adding one: a module with such a class, a
name in ``BACKENDS`` and a branch in ``backend_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from vml.config import ProjectConfig
from vml.errors import NotFoundError
from vml.store import RunStore

BACKENDS = ("local", "ray")
Say = Callable[[str, str], None]  # (run name, what happened: "started", "finished, test_acc 0.97")


class Feeder(Protocol):
    """What adds runs to a sweep while it runs (a study's driver, ``vml.launch.tune``).
    A backend calls ``feed`` on every turn of its loop with how many more runs could
    start now; the feeder may queue that many in the sweep, and follow or stop the
    running ones. The backend hands it each ended run's row (``settle``) before saying
how it ended. The sweep ends when none is queued or running and ``exhausted``."""

    @property
    def exhausted(self) -> bool: ...

    def feed(self, store: RunStore, free: int) -> None: ...

    def settle(self, store: RunStore, row: dict[str, Any]) -> dict[str, Any]:
        """A run of the sweep ended: its row as the feeder records the end (a pruned trial)."""
        ...

    def finish(self, store: RunStore) -> None: ...


class Backend(Protocol):
    """What runs a sweep's queue. ``run()`` starts the sweep's queued runs in order,
    as many at a time as it was given, follows them until none is queued or running,
    and returns each started run's final status by name. A run is recorded by its
    worker; the backend records only what a worker could not: a run whose worker died
    without recording an end is ``crashed``. It says each start and end through ``say``."""

    ended: dict[str, str]
    feeder: Feeder | None

    def run(self) -> dict[str, str]: ...


def backend_for(project: ProjectConfig, sweep: str, say: Say) -> Backend:
    """The backend a recorded sweep asks for (its ``backend`` column), with its
    settings (parallel, GPUs and CPUs per run, a Ray address)."""
    with RunStore(project.db_path) as store:
        row = store.sweep(sweep)
    if row is None:
        raise NotFoundError(f"no sweep {sweep!r}")
    backend: Backend
    if row["backend"] == "ray":
        from vml.launch.ray import RayScheduler

        backend = RayScheduler(
            project,
            sweep,
            row["parallel"],
            row["gpus_per_run"] or 0,
            row["cpus_per_run"] or 1,
            row["address"],
            say,
        )
    else:
        from vml.launch.local import LocalScheduler
        from vml.launch.process import placement

        chosen = placement(row["parallel"], row["gpus_per_run"], row["cpus_per_run"])
        backend = LocalScheduler(project, sweep, chosen, say)
    if row["study"]:
        from vml.launch.tune import TuneDriver

        backend.feeder = TuneDriver(project, sweep, row["parallel"], say)
    return backend
