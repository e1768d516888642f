"""Starting runs: worker processes, the local queue, Ray, sweeps and runs files.

A sweep's runs are recorded ``queued`` in the store first (``vml.launch.sweep``); a
backend then starts them and follows them until none is queued or running. A backend
is one module here with a class that has the shape of ``Backend``; ``backend_for``
picks the one a recorded sweep asks for. Adding one: a module with such a class, a
name in ``BACKENDS`` and a branch in ``backend_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from vml.config import ProjectConfig
from vml.errors import NotFoundError
from vml.store import RunStore

BACKENDS = ("local", "ray")
Say = Callable[[str, str], None]  # (run name, what happened: "started", "finished, test_acc 0.97")


class Backend(Protocol):
    """What runs a sweep's queue. ``run()`` starts the sweep's queued runs in order,
    as many at a time as it was given, follows them until none is queued or running,
    and returns each started run's final status by name. A run is recorded by its
    worker; the backend records only what a worker could not: a run whose worker died
    without recording an end is ``crashed``. It says each start and end through ``say``."""

    ended: dict[str, str]

    def run(self) -> dict[str, str]: ...


def backend_for(project: ProjectConfig, sweep: str, say: Say) -> Backend:
    """The backend a recorded sweep asks for (its ``backend`` column), with its
    settings (parallel, GPUs and CPUs per run, a Ray address)."""
    with RunStore(project.db_path) as store:
        row = store.sweep(sweep)
    if row is None:
        raise NotFoundError(f"no sweep {sweep!r}")
    if row["backend"] == "ray":
        from vml.launch.ray import RayScheduler

        return RayScheduler(
            project,
            sweep,
            row["parallel"],
            row["gpus_per_run"] or 0,
            row["cpus_per_run"] or 1,
            row["address"],
            say,
        )
    from vml.launch.local import LocalScheduler
    from vml.launch.process import placement

    chosen = placement(row["parallel"], row["gpus_per_run"], row["cpus_per_run"])
    return LocalScheduler(project, sweep, chosen, say)
