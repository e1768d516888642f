"""The worker process of a queued run: ``python -m vml.launch.worker PROJECT NAME``
trains the queued run NAME of the project at PROJECT and records it.

Its progress goes to the run's log.txt; what it prints (warnings, a crash's traceback)
goes to worker.txt beside it. Under torchrun (``ml train --gpus N``) each process
trains as one rank of the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from vml.config import ProjectConfig, load_run_project, resolve_task
from vml.errors import VmlError


def main(argv: list[str]) -> int:
    """Train the queued run ``argv = [PROJECT, NAME]``; 0 if it finished."""
    project_root, name = argv
    # A process started from a background job inherits SIGINT ignored; ml cancel
    # stops a worker with SIGINT, so it must always raise KeyboardInterrupt here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from vml.evaluate.service import start_helper

    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 evaluates (runner._train)
        start_helper()  # scikit-learn loads in it while this process imports torch
    from vml.train.runner import start_queued_run

    with open(os.devnull, "w") as quiet:  # the log has every line already
        try:
            project = load_run_project(project_root, name)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: ml train --gpus N
                result = start_distributed(project, name, quiet)
            else:
                result = start_queued_run(project, name, stderr=quiet)
        except VmlError as exc:  # e.g. cancelled while this process started
            print(f"worker: {exc.message}", file=sys.stderr)
            return 1
    return 0 if result.status == "finished" else 1


def forked_main(root: str, name: str, env: dict[str, str], output: str) -> None:
    """The worker of queued run ``name`` forked from the warm process (see
    ``vml.launch.warm``): become a process of its own as a cold worker would be, then
    train. Exits with ``main``'s code."""
    os.setsid()  # its own session and process group, for ml cancel and kill
    fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)  # its GPUs (CUDA_VISIBLE_DEVICES) before anything touches CUDA
    os.chdir(root)
    threads = env.get("OMP_NUM_THREADS")
    if threads:
        import torch

        # The warm process read OMP_NUM_THREADS when it imported torch: set this run's own.
        torch.set_num_threads(int(threads))
    sys.exit(main([root, name]))


def start_distributed(project: ProjectConfig, name: str, stderr: TextIO):
    """One rank under torchrun: join the process group, train run ``name`` as this
    rank (rank 0 records, the others write to a ``Follower`` and a scratch folder),
    leave the group."""
    import torch
    import torch.distributed as dist

    from vml.data.prepare import prepare_data
    from vml.store import RunStore
    from vml.train.distributed import Follower
    from vml.train.runner import start_queued_run

    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank()
    scratch = None
    try:
        with RunStore(project.db_path) as store:
            row = store.run_by_name(name)
        if row is None:
            raise ValueError(f"no run named {name!r}")
        # Rank 0 prepares the data (or finds it cached) before the others read it.
        hparams = row["hyperparameters"]
        if rank == 0:
            prepare_data(project, hparams["random_seed"], task=resolve_task(hparams)[0])
        dist.barrier()
        if rank == 0:
            return start_queued_run(project, name, stderr=stderr)
        scratch = Path(tempfile.mkdtemp(prefix=f"vml-{name}-rank{rank}-"))
        return start_queued_run(project, name, stderr=stderr, store=Follower(row), folder=scratch)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
