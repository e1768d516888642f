"""Starting workers: recording a queued run, a worker process for it (detached,
through torchrun for several GPUs), where queued runs go (GPU ids, slots, threads)
and a detached scheduler.

A worker runs in a session of its own: it outlives the process that started it and
a Ctrl-C in that terminal, and ``ml cancel`` can signal its whole process group.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vml.config import ProjectConfig, resolve_task
from vml.errors import UsageError
from vml.liveness import process_identity
from vml.paths import SWEEP_OUTPUT, WORKER_OUTPUT, db_path, run_dir, trainings_dir
from vml.store import RunStore
from vml.store.runs import utcnow


def taken_names(root: Path) -> set[str]:
    """Names a new run cannot have: those of the recorded runs and of the folders in
    trainings/."""
    folder = trainings_dir(root)
    taken = set()
    if db_path(root).exists():
        with RunStore(db_path(root)) as store:
            taken = store.names()
    if folder.is_dir():
        taken |= {p.name for p in folder.iterdir()}
    return taken


def record_queued(
    config: ProjectConfig,
    name: str,
    name_generated: bool,
    hparams: dict[str, Any],
    model: str | None = None,
    **fields: Any,
) -> str:
    """Record a ``queued`` run with resolved ``hparams`` (of the project's model, or
    ``model``) and make its folder; its name (a generated one is replaced if another
    process took it meanwhile)."""
    with RunStore(config.db_path) as store:
        _, name = store.create_run_with_folder(
            name,
            name_generated,
            model or config.model.name,
            hparams,
            status="queued",
            epochs=hparams["epochs"],
            monitor=resolve_task(hparams)[1],
            **fields,
        )
    return name


def spawn_worker(
    root: Path, name: str, env: dict[str, str] | None = None, processes: int = 1
) -> subprocess.Popen:
    """Start a fresh worker process for queued run ``name`` (``python -m
    vml.launch.worker``; through torchrun with ``processes`` > 1, one per GPU) and
    record it on the run."""
    launcher = [sys.executable, "-m"]
    if processes > 1:
        launcher += ["torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m"]
    with (run_dir(root, name) / WORKER_OUTPUT).open("ab") as output:
        process = subprocess.Popen(
            [*launcher, "vml.launch.worker", str(root), name],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    record_worker(root, name, process.pid)
    return process


def record_worker(root: Path, name: str, pid: int) -> None:
    """Record process ``pid`` as queued run ``name``'s worker, so that readers can tell
    when it dies before it claims the run."""
    try:
        identity = process_identity(pid)
    except Exception:  # it already exited: it recorded why
        identity = {"pid": pid}
    with RunStore(db_path(root)) as store:
        # Only while queued: the worker may have claimed the run already.
        store.update_queued(name, heartbeat=utcnow(), **identity)


def start_detached_scheduler(root: Path, sweep: str) -> subprocess.Popen:
    """Start the scheduler of ``sweep`` in a process of its own session; its output
    goes to ``trainings/.sweeps/SWEEP.txt``."""
    folder = trainings_dir(root) / SWEEP_OUTPUT
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{sweep}.txt").open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "vml.launch.local", str(root), sweep],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


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


