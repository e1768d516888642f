"""Stopping a run: ask it (SIGINT, or the store for another host), then, if it does
not stop in time, SIGTERM and SIGKILL to its process group.

A worker that hears SIGINT stops at the next batch boundary, keeps ``best.pt`` and
records ``cancelled``. One request only: a worker takes a second SIGINT as "stop now".
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from vml.liveness import host, process_alive, reap
from vml.store import RunStore
from vml.store.runs import ACTIVE_STATES, utcnow

KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.1


def cancel_run(db_path: Path, name: str, timeout: float) -> str:
    """Cancel run ``name``: a queued run leaves the queue at once; a running one is
    asked to stop and, if it has not after ``timeout`` s, its process group gets
    SIGTERM, then SIGKILL, and it ends ``killed``. Returns the final status (a run on
    another host may still be ``running``: it was asked to stop)."""
    with RunStore(db_path) as store:
        row = _current(store, name)
        if row is None or row["status"] not in ACTIVE_STATES:
            return row["status"] if row else "deleted"
        # A queued run (its worker, if any, still starting up) is cancelled in the store:
        # the worker then finds it no longer queued and exits without training.
        if row["status"] == "queued" and store.set_status(
            row["id"], "cancelled", ("queued",), ended_at=utcnow()
        ):
            store.add_event(row["id"], "cancelled", "cancelled before it started")
            if row["pid"] and row["host"] == host():
                exited_within(row["pid"], KILL_GRACE_SECONDS)
            return "cancelled"
        row = _current(store, name)
        if row is None or row["status"] not in ACTIVE_STATES:
            return row["status"] if row else "deleted"
        store.add_event(row["id"], "cancel-requested", f"ml cancel from pid {os.getpid()} on {host()}")
        local = ask_to_stop(store, row)
        if not local:
            return _ended_within(store, name, timeout)["status"]
        if _ended_within(store, name, timeout)["status"] not in ACTIVE_STATES:
            exited_within(row["pid"], KILL_GRACE_SECONDS)  # so its memory (and GPU) is free
            return _current(store, name)["status"]
        how = terminate(row["pid"], row["pid_started"])
        store.set_status(
            row["id"],
            "killed",
            ("queued", "running", "cancelled", "failed"),
            ended_at=utcnow(),
            error=f"did not stop within {timeout:g} s of ml cancel; stopped with {how}",
        )
        store.add_event(row["id"], "killed", how)
        return _current(store, name)["status"]


def ask_to_stop(store: RunStore, row: dict[str, Any]) -> bool:
    """Ask a running run to stop at its next batch: SIGINT (what Ctrl-C does) to a
    worker on this host, else a request in the store that its heartbeat passes on
    (a Ray task's through the scheduler). True if the worker was signalled here."""
    local = row["host"] == host() and process_alive(row["pid"], row["pid_started"])
    if local:
        os.kill(row["pid"], signal.SIGINT)
    else:
        store.request_cancel(row["id"])
    return local


def _current(store: RunStore, name: str) -> dict[str, Any] | None:
    """Run ``name`` as it is now: a live run whose process died reads ``crashed``."""
    row = store.run_by_name(name)
    return reap(store, [row])[0] if row else None


def _ended_within(store: RunStore, name: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while (row := _current(store, name)) is not None and row["status"] in ACTIVE_STATES:
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    return row or {"status": "deleted"}


def exited_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` is gone within ``seconds``."""
    import psutil

    try:
        psutil.Process(pid).wait(seconds)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def terminate(pid: int, started: float | None) -> str:
    """SIGTERM, then after a grace period SIGKILL, to the worker's process group (or
    the process alone when it leads no group of its own); which one it took."""

    def send(signum: int) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    if exited_within(pid, KILL_GRACE_SECONDS):
        return "SIGTERM"
    if process_alive(pid, started):
        send(signal.SIGKILL)
    return "SIGKILL"
