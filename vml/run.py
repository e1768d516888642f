"""One run, as scripts and notebooks see it: ``vml.Run``.

A ``Run`` is a handle on a row of the store, not a copy: every call reads the store
again, so it sees what the worker (in this process or any other) recorded last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from vml.errors import VmlError
from vml.store.runs import ACTIVE_STATES, ENDED_STATES, utcnow

if TYPE_CHECKING:
    from vml.api import Project

KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.1


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
        from vml.api import show_run

        return show_run(self.project, self._row())

    def status(self) -> str:
        """``queued``, ``running``, ``finished``, ``failed``, ``cancelled``, ``killed``
        or ``crashed``."""
        return self._row()["status"]

    def progress(self) -> dict[str, Any]:
        """How far it got: ``percent`` (of all steps), ``epoch``/``epochs`` (epochs
        done) and ``step``/``steps`` (steps done in the current epoch)."""
        row = self._row()
        epochs, steps = row["epochs"] or 0, row["steps"] or 0
        percent = percent_done(row["status"], row["epoch"], epochs, row["step"], steps)
        return {
            "status": row["status"],
            "percent": percent,
            "epoch": row["epoch"],
            "epochs": epochs,
            "step": row["step"],
            "steps": steps,
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

    def logs(self) -> str:
        """The run's log.txt so far."""
        path = self.project.trainings_dir / self.name / "log.txt"
        return path.read_text(encoding="utf-8") if path.exists() else ""

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

    def cancel(self, timeout: float = 30.0) -> str:
        """Ask the run to stop at the next batch boundary (it keeps best.pt and ends
        ``cancelled``). If it has not stopped after ``timeout`` s, its process group
        gets SIGTERM, then SIGKILL, and it ends ``killed``. Returns the final status
        (a run on another host may still be ``running``: it was asked to stop)."""
        return cancel_run(self, timeout)

    def _ended(self) -> dict[str, Any]:
        info = self.info()
        if info["status"] != "finished":
            raise RunFailed(self.name, info["status"], info["error"])
        return info

    def _row(self) -> dict[str, Any]:
        if self._process is not None:
            self._process.poll()  # reap our own worker, so its pid does not linger as a zombie
        return self.project.find_run(f"@{self.name}")


def percent_done(
    status: str, epoch: int | None, epochs: int | None, step: int | None, steps: int | None
) -> float:
    """How much of a run's steps are done, 0-100, to one decimal."""
    if status == "finished":
        return 100.0
    epochs, steps, step = epochs or 0, steps or 0, step or 0
    # At an epoch's end the row holds the finished epoch and its last step.
    done = (epoch or 0) * steps + (step if step < steps else 0)
    return round(min(100.0 * done / max(epochs * steps, 1), 100.0), 1)


def cancel_run(run: Run, timeout: float) -> str:
    """See ``Run.cancel``."""
    from vml.lifecycle import host, process_alive
    from vml.store import RunStore

    row = run._row()
    if row["status"] in ENDED_STATES or row["status"] == "deleted":
        return row["status"]
    with RunStore(run.project.db_path) as store:
        # A queued run (its worker, if any, still starting up) is cancelled in the store:
        # the worker then finds it no longer queued and exits without training.
        if row["status"] == "queued" and store.set_status(
            row["id"], "cancelled", ("queued",), ended_at=utcnow()
        ):
            store.add_event(row["id"], "cancelled", "cancelled before it started")
            if row["pid"] and row["host"] == host():
                _exited_within(row["pid"], KILL_GRACE_SECONDS)
            return "cancelled"
        row = run._row()
        if row["status"] not in ACTIVE_STATES:
            return row["status"]
        store.add_event(row["id"], "cancel-requested", f"ml cancel from pid {os.getpid()} on {host()}")
        local = row["host"] == host() and process_alive(row["pid"], row["pid_started"])
        # One request, not two: a worker takes a second SIGINT as "stop now".
        if local:
            os.kill(row["pid"], signal.SIGINT)  # what Ctrl-C does: stop at the next batch
        else:
            store.request_cancel(row["id"])  # its heartbeat thread passes it on as SIGINT
        if not local:
            _ended_within(run, timeout)
            return run.status()
        if _ended_within(run, timeout):
            _exited_within(row["pid"], KILL_GRACE_SECONDS)  # so its memory (and GPU) is free
            return run.status()
        how = _terminate(row["pid"], row["pid_started"])
        store.set_status(
            row["id"],
            "killed",
            ("queued", "running", "cancelled", "failed"),
            ended_at=utcnow(),
            error=f"did not stop within {timeout:g} s of ml cancel; stopped with {how}",
        )
        store.add_event(row["id"], "killed", how)
    return run.status()


def _ended_within(run: Run, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if run.status() not in ACTIVE_STATES:
            return True
        time.sleep(POLL_SECONDS)
    return run.status() not in ACTIVE_STATES


def _exited_within(pid: int, seconds: float) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(seconds)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def _terminate(pid: int, started: float | None) -> str:
    """SIGTERM, then after a grace period SIGKILL, to the worker's process group (or
    the process alone when it leads no group of its own); which one it took."""
    from vml.lifecycle import process_alive

    def send(signum: int) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    if _exited_within(pid, KILL_GRACE_SECONDS):
        return "SIGTERM"
    if process_alive(pid, started):
        send(signal.SIGKILL)
    return "SIGKILL"
