"""The local queue: a sweep's queued runs started K at a time, each in its own worker
process pinned to its GPUs (``CUDA_VISIBLE_DEVICES``) and CPU threads.

The queue is the store: a sweep's runs are recorded ``queued`` up front and started
in order as slots free up. Cancelling a queued run (``ml cancel``) takes it out of the
queue; a worker that dies does not stop the queue. The scheduler keeps a heartbeat on
its sweep like a worker does on its run. ``python -m vml.scheduler PROJECT SWEEP``
is a detached scheduler (``ml train --detach`` with a sweep).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vml import api
from vml.errors import UsageError
from vml.store import RunStore
from vml.store.runs import ACTIVE_STATES, utcnow

POLL_SECONDS = 0.2
SWEEP_OUTPUT = ".sweeps"  # under trainings/: a detached scheduler's output


def gpu_ids() -> list[str]:
    """The GPUs this machine offers: ``CUDA_VISIBLE_DEVICES`` if set, else the NVIDIA
    device files (without importing torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted((m.group(1) for n in names if (m := re.fullmatch(r"nvidia(\d+)", n))), key=int)


@dataclass(frozen=True)
class Placement:
    """How many runs at once, and the GPUs and CPU threads of each slot."""

    slots: tuple[tuple[str, ...], ...]
    cpus_per_run: int

    @property
    def parallel(self) -> int:
        return len(self.slots)


def placement(
    parallel: int | None, gpus_per_run: int | None = None, cpus_per_run: int | None = None
) -> Placement:
    """Slots for ``parallel`` runs, each with its GPUs and CPU threads. By default a
    run gets one GPU when the machine has any (runs beyond the GPUs share them round
    robin) and none otherwise, and there are as many slots as GPU sets, else CPU
    cores / ``cpus_per_run``. ``UsageError`` when GPUs asked for are not there."""
    cores = os.cpu_count() or 1
    gpus = gpu_ids()
    if gpus_per_run is None and gpus:
        parallel = parallel or len(gpus)
        slots = tuple((gpus[i % len(gpus)],) for i in range(parallel))
        return Placement(slots, cpus_per_run or max(cores // parallel, 1))
    if gpus_per_run:
        fits = len(gpus) // gpus_per_run
        if fits == 0:
            raise UsageError(
                f"--gpus-per-run {gpus_per_run}: {len(gpus)} GPU(s) found (run on the CPU with --gpus-per-run 0)"
            )
        parallel = parallel or fits
        if parallel > fits:
            raise UsageError(
                f"--parallel {parallel} with {gpus_per_run} GPU(s) per run needs {parallel * gpus_per_run} GPUs;"
                f" {len(gpus)} found (use --parallel {fits})"
            )
        slots = tuple(tuple(gpus[i * gpus_per_run : (i + 1) * gpus_per_run]) for i in range(parallel))
        return Placement(slots, cpus_per_run or max(cores // parallel, 1))
    cpus = cpus_per_run or (max(cores // parallel, 1) if parallel else 1)
    parallel = parallel or max(cores // cpus, 1)
    return Placement(tuple(() for _ in range(parallel)), cpus)


def worker_env(gpus: tuple[str, ...], cpus: int) -> dict[str, str]:
    """The environment of a worker in a slot: its GPUs only (none: the CPU), and its
    share of threads."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus) if gpus else ""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = str(cpus)
    return env


class LocalScheduler:
    """Runs the queued runs of ``sweep`` in ``project``, ``placement.parallel`` at a
    time, until none is queued or running. ``say(name, event)`` hears each start and end."""

    def __init__(
        self,
        project: api.Project,
        sweep: str,
        placement: Placement,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.project = project
        self.sweep = sweep
        self.placement = placement
        self.say = say
        self.stop = threading.Event()
        self.ended: dict[str, str] = {}  # the final status of each run it started
        self._running: dict[str, tuple[subprocess.Popen, tuple[str, ...]]] = {}

    def run(self) -> dict[str, str]:
        """Start and follow the runs until none is queued or running; ``ended``."""
        with RunStore(self.project.db_path) as store:
            store.update_sweep(self.sweep, **_identity())
            while True:
                self._reap(store)
                queued = store.sweep_names(self.sweep, "queued")
                free = [slot for slot in self.placement.slots if slot not in self._busy()]
                for name, slot in zip(queued, free, strict=False):
                    env = worker_env(slot, self.placement.cpus_per_run)
                    self._running[name] = (self.project.spawn_worker(name, env), slot)
                    self.say(name, "started" + (f" on GPU {','.join(slot)}" if slot else ""))
                store.update_sweep(self.sweep, heartbeat=utcnow())
                if not self._running and not store.sweep_names(self.sweep, "queued"):
                    break
                self.stop.wait(POLL_SECONDS)
            store.update_sweep(self.sweep, ended_at=utcnow())
        return self.ended

    def _busy(self) -> list[tuple[str, ...]]:
        return [slot for _, slot in self._running.values()]

    def _reap(self, store: RunStore) -> None:
        """Free the slots of workers that exited; a run its worker left live crashed."""
        for name, (process, _) in list(self._running.items()):
            code = process.poll()
            if code is None:
                continue
            del self._running[name]
            row = store.run_by_name(name)
            if row is None:
                continue
            if row["status"] in ACTIVE_STATES:
                reason = f"its worker exited with code {code} without recording an end"
                if store.set_status(
                    row["id"], "crashed", ACTIVE_STATES, ended_at=utcnow(), error=f"crashed: {reason}"
                ):
                    store.add_event(row["id"], "crashed", reason)
                row = store.run_by_name(name) or row
            self.ended[name] = row["status"]
            self.say(name, ending(row))


def ending(row: dict[str, Any]) -> str:
    """How a run ended, in a few words: ``finished, test_acc 0.9722``, ``crashed: why``."""
    if row["status"] == "finished" and row["test_acc"] is not None:
        return f"finished, test_acc {row['test_acc']:.4f}"
    error = str(row["error"] or "").removeprefix(f"{row['status']}: ")
    return f"{row['status']}: {error}" if error else str(row["status"])


def _identity() -> dict[str, object]:
    from vml.lifecycle import process_identity

    return {**process_identity(os.getpid()), "heartbeat": utcnow()}


def start_detached(project: api.Project, sweep: str) -> subprocess.Popen:
    """Start the scheduler of ``sweep`` in a process of its own session; its output
    goes to ``trainings/.sweeps/SWEEP.txt``."""
    folder = project.trainings_dir / SWEEP_OUTPUT
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{sweep}.txt").open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "vml.scheduler", str(project.root), sweep],
            cwd=project.root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def scheduler_for(project: api.Project, sweep: str, say: Callable[[str, str], None]):
    """The scheduler a recorded sweep asks for: local, or Ray (``vml.ray_backend``)."""
    with RunStore(project.db_path) as store:
        row = store.sweep(sweep)
    if row is None:
        raise UsageError(f"no sweep {sweep!r}")
    if row["backend"] == "ray":
        from vml.ray_backend import RayScheduler

        return RayScheduler(
            project,
            sweep,
            row["parallel"],
            row["gpus_per_run"] or 0,
            row["cpus_per_run"] or 1,
            row["address"],
            say,
        )
    chosen = placement(row["parallel"], row["gpus_per_run"], row["cpus_per_run"])
    return LocalScheduler(project, sweep, chosen, say)


def main(argv: list[str]) -> int:
    root, sweep = argv
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited ignored (see the worker)
    scheduler = scheduler_for(
        api.Project(Path(root)), sweep, lambda name, event: print(f"{name}: {event}", flush=True)
    )
    ended = scheduler.run()
    return 0 if all(status == "finished" for status in ended.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
