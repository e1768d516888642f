"""One run, as scripts and notebooks see it: ``vml.Run``.

A ``Run`` is a handle on a row of the store, not a copy: every call reads the store
again, so it sees what the worker (in this process or any other) recorded last.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vml.errors import VmlError
from vml.paths import LOG_FILE, run_dir
from vml.store.runs import ACTIVE_STATES
from vml.views import percent_done, show_run

if TYPE_CHECKING:
    from vml.api import Project
    from vml.train.runner import RunResult


class RunFailed(VmlError):
    """A run being waited for ended in a state other than ``finished``."""

    def __init__(self, name: str, status: str, error: str | None) -> None:
        super().__init__(f"run {name!r} {status}" + (f": {error}" if error else ""))
        self.name, self.status, self.error = name, status, error


class Run:
    """A recorded run of ``project``, found by name."""

    def __init__(self, project: Project, name: str, process: subprocess.Popen | None = None) -> None:
        self.project = project
        self.name = name
        self._process = process  # the worker, when this process started it

    def __repr__(self) -> str:
        return f"Run({self.name!r}, status={self.status()!r})"

    def info(self) -> dict[str, Any]:
        """Everything ``ml show --format json`` prints about the run."""
        return show_run(self._row(), run_dir(self.project.root, self.name))

    def status(self) -> str:
        """``queued``, ``running``, ``finished``, ``failed``, ``cancelled``, ``killed``
        or ``crashed``."""
        return self._row()["status"]

    def progress(self) -> dict[str, Any]:
        """How far it got, in ``info()``'s words: ``percent`` (of all batches),
        ``epoch``/``epochs`` (epochs done) and ``batch``/``batches`` (batches done in
        the current epoch)."""
        info = self.info()
        return {
            "status": info["status"],
            "percent": percent_done(info),
            "epoch": info["epoch"],
            "epochs": info["epochs"] or 0,
            "batch": info["batch"],
            "batches": info["batches"] or 0,
        }

    def metrics(self, key: str | None = None) -> list[dict[str, Any]]:
        """Recorded metric points in step order: ``key``, ``epoch``, ``step``,
        ``value``, ``time``. Epoch metrics are ``loss``, ``acc``, ``val_loss`` and
        ``val_acc``; every step adds ``step_loss`` and ``lr``."""
        from vml.store import RunStore

        row = self._row()
        with RunStore(self.project.db_path) as store:
            points = store.metrics(row["id"], key)
        return [{k: p[k] for k in ("key", "epoch", "step", "value", "time")} for p in points]

    def evaluation(self) -> dict[str, Any]:
        """Its test split's evaluation (``evaluation.json``): ``metrics``, and for a
        classification the per-class ``classes``, the ``confusion_matrix`` and the ROC
        and PR ``curves``. ``UsageError`` when it has none (``ml test`` makes it)."""
        from vml.evaluate.report import load_evaluation

        return load_evaluation(self.folder)

    def reproduction(self) -> dict[str, Any] | None:
        """Its reproducibility record (``repro.json``: commit, patch, versions,
        packages, command, seed, data fingerprint), or None for a run from before vml
        kept them."""
        from vml.repro import load_record

        return load_record(self.folder)

    @property
    def folder(self) -> Path:
        """Where its files are: ``trainings/NAME``."""
        return run_dir(self.project.root, self.name)

    def logs(self) -> str:
        """The run's log.txt so far."""
        return self.log_since(0, partial=True)[0]

    def log_since(self, offset: int, partial: bool = False, limit: int | None = None) -> tuple[str, int]:
        """What the run's log.txt gained since byte ``offset``, and the offset to ask
        from next time: whole lines only unless ``partial`` (the worker may be in the
        middle of one), and at most the last ``limit`` bytes (from a line start)."""
        return read_new(run_dir(self.project.root, self.name) / LOG_FILE, offset, partial, limit)

    def wait(self, poll: float = 1.0, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run ends; its ``info()`` if it finished. Raises
        ``RunFailed`` if it ended otherwise, ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.status()) in ACTIVE_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.name!r} is still {status} after {timeout:g} s")
            time.sleep(poll)
        return self._ended()

    async def wait_async(self, poll: float = 1.0, timeout: float | None = None) -> dict[str, Any]:
        """``wait()`` for asyncio: polls without blocking the event loop."""
        import asyncio  # 35 ms: not for every ml command

        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.status()) in ACTIVE_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.name!r} is still {status} after {timeout:g} s")
            await asyncio.sleep(poll)
        return self._ended()

    def resume(self, epochs: int | None = None, stderr: TextIO = sys.stderr) -> RunResult:
        """Continue the run from its ``last.pt`` in this process, as ``ml resume``
        does, and return how it ended; with ``epochs``, to that many epochs in all
        (also a finished run)."""
        return self.project.resume(f"@{self.name}", stderr=stderr, epochs=epochs)

    def cancel(self, timeout: float = 30.0) -> str:
        """Ask the run to stop at the next batch boundary (it keeps best.pt and ends
        ``cancelled``). If it has not stopped after ``timeout`` s, its process group
        gets SIGTERM, then SIGKILL, and it ends ``killed``. Returns the final status
        (a run on another host may still be ``running``: it was asked to stop)."""
        from vml.launch.stop import cancel_run

        row = self._row()
        if row["status"] not in ACTIVE_STATES:  # ended, or deleted
            return row["status"]
        return cancel_run(self.project.db_path, self.name, timeout)

    def _ended(self) -> dict[str, Any]:
        info = self.info()
        if info["status"] != "finished":
            raise RunFailed(self.name, info["status"], info["error"])
        return info

    def _row(self) -> dict[str, Any]:
        if self._process is not None:
            self._process.poll()  # reap our own worker, so its pid does not linger as a zombie
        return self.project.find_run(f"@{self.name}")


def read_new(path: Path, offset: int, partial: bool = False, limit: int | None = None) -> tuple[str, int]:
    """What file ``path`` gained since byte ``offset`` and the new offset: whole lines
    only unless ``partial``, at most the last ``limit`` bytes (from a line start). A
    file that shrank (rewritten) is read from its start."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "", 0
    if size < offset:
        offset = 0
    start = offset if limit is None else max(offset, size - limit)
    with path.open("rb") as file:
        file.seek(start)
        chunk = file.read(size - start)
    data = chunk if partial else chunk[: chunk.rfind(b"\n") + 1]
    end = start + len(data)
    if start > offset:  # skipped ahead: drop the partial first line
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", errors="replace"), end
