"""Warm starts: the runs of a queue fork from a process that has imported torch and
vml's training code once, instead of each importing them afresh (~1.9 s a run).

The warm process is the standard library's fork server (``multiprocessing`` with the
``forkserver`` start method), told to import ``vml.launch.warmup`` when it starts. It
only imports: it runs no torch operation, so no thread pool (OpenMP, intra-op) and no CUDA
context exists in it to be forked. Each run is forked from it on request and is then
a process of its own: it starts a session of its own (its pid leads its process group,
which ``ml cancel`` signals), takes the environment of its slot (GPUs, threads) before
anything touches CUDA, and sets its own thread count. Nothing carries over from one run
to the next: each is forked from the same untouched image, and a run's own modules (a
project's ``net.py``) are imported in the run, not in the warm process.

If the warm process dies, the next start begins a new one (said in one line); runs
forked from the dead one keep running and are followed by their pid. If a warm start
fails, the run starts cold (``spawn_worker``), also said in one line.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from vml.launch.process import record_worker, spawn_worker
from vml.liveness import process_alive
from vml.paths import WORKER_OUTPUT, run_dir

# A forked child whose fork server died reports this code: the run may still be alive.
LOST_PARENT_CODE = 255
# VML_WARM_START=0 starts every run of a queue as a fresh interpreter (a cold start):
# for a model that cannot live with being forked, and as the benchmark's baseline.
SWITCH = "VML_WARM_START"


def enabled() -> bool:
    """Whether queued runs start warm: unless ``VML_WARM_START=0``, or the platform
    has no fork server (Windows)."""
    return os.environ.get(SWITCH, "1") != "0" and "forkserver" in multiprocessing.get_all_start_methods()


class WarmWorker:
    """A run's worker forked from the warm process: its ``pid``, ``poll()`` (its exit
    code, None while it runs) and a ``sentinel`` that is readable once it may have ended."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        self.pid: int = process.pid
        self._started = _create_time(self.pid)
        self.orphaned = False  # its warm process died first: its exit code is lost

    @property
    def sentinel(self) -> int | None:
        # An orphan's sentinel stays readable: it is followed by polling instead.
        return None if self.orphaned else self._process.sentinel

    def poll(self) -> int | None:
        if self.orphaned:
            return None if process_alive(self.pid, self._started) else LOST_PARENT_CODE
        code = self._process.exitcode
        if code == LOST_PARENT_CODE and process_alive(self.pid, self._started):
            self.orphaned = True  # its warm process died; it did not
            return None
        return code


class WarmStarter:
    """Starts queued runs from the warm process; ``say(name, line)`` hears the
    one-line notes (a restarted warm process, a cold fallback) with the run started."""

    def __init__(self, say: Callable[[str, str], None] = lambda name, line: None) -> None:
        self.say = say
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["vml.launch.warmup"])
        self._server_pid: int | None = None

    def start(self, root: Path, name: str, env: dict[str, str]) -> WarmWorker | subprocess.Popen:
        """Start the worker of queued run ``name`` with environment ``env``, forked
        from the warm process; cold when that fails. The worker is recorded on the run.

        The first start waits for the warm process to import (~3 s). Starting that run
        cold meanwhile was tried and is slower: two processes importing torch at once on
        2 cores took 6.0 s to the first run's end, against 3.5 s one after the other."""
        from vml.launch.worker import forked_main

        output = run_dir(root, name) / WORKER_OUTPUT
        try:
            process = self.context.Process(
                target=forked_main, args=(str(root), name, env, str(output)), name=f"vml-{name}", daemon=False
            )
            with _main_hidden():
                process.start()
        except Exception as exc:  # the fork server could not start, or died mid-request
            self.say(name, f"warm start failed ({type(exc).__name__}: {exc}); starting it cold")
            return spawn_worker(root, name, env)
        server = _server_pid()
        if self._server_pid is not None and server != self._server_pid:
            self.say(name, f"the warm process (pid {self._server_pid}) was gone: started a new one (pid {server})")
        self._server_pid = server
        record_worker(root, name, process.pid)
        return WarmWorker(process)


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start a process without telling it this process's ``__main__``. Multiprocessing
    would run the parent's main script again in every child (as ``__mp_main__``): ``ml``
    imports the whole CLI (60-80 ms a run, measured), and a user's script without an
    ``if __name__ == "__main__"`` guard would run again. The child needs none of it:
    what it runs lives in vml."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _server_pid() -> int | None:
    # The fork server's pid is not public; it is used only to say when it restarted.
    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None
