"""Whether a run's process is alive, its heartbeat, and how runs that died are found.

A run in the store says ``running`` until its process says otherwise, so a process
that is killed (SIGKILL, OOM killer, a machine going down) cannot say anything. Every
worker keeps a heartbeat in its row, and records its pid, host and the process's
start time. A reader (``ml list``, ``ml show``, the dashboard, the API) marks a run
``crashed`` when its heartbeat is stale and, on this host, its process is gone: a pid
that now belongs to another process (a different start time) counts as gone.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil

from vml.errors import DiskFullError
from vml.store import RunRecords, RunStore
from vml.store.runs import utcnow

HEARTBEAT_SECONDS = 1.0
# Stale means a few beats missed: on this host a dead pid is also required, so this
# only guards against a pid namespace we cannot see into (a container).
STALE_LOCAL_SECONDS = 5.0
# Another host's process cannot be checked: the heartbeat is all there is.
STALE_REMOTE_SECONDS = 20.0
# Two start times of one process read at different moments differ by rounding only.
START_TIME_TOLERANCE = 1.0


def host() -> str:
    return socket.gethostname()


def process_identity(pid: int) -> dict[str, Any]:
    """What the store records to recognise process ``pid`` later: pid, host and
    start time."""
    return {"pid": pid, "host": host(), "pid_started": psutil.Process(pid).create_time()}


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether process ``pid``, started at ``started``, still runs on this host (a
    zombie, or another process that reused the pid, does not count)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) < START_TIME_TOLERANCE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _age_seconds(timestamp: str | None, now: datetime) -> float:
    if not timestamp:
        return float("inf")
    return (now - datetime.fromisoformat(timestamp)).total_seconds()


def crash_reason(row: dict[str, Any], now: datetime | None = None) -> str | None:
    """Why a ``running`` run (or a queued one whose worker was started) must have
    crashed, or None while it may still be alive."""
    if row["status"] not in ("running", "queued") or not row.get("pid"):
        return None
    now = now or datetime.now(timezone.utc)
    age = _age_seconds(row["heartbeat"], now)
    if row["host"] == host():
        if age < STALE_LOCAL_SECONDS or process_alive(row["pid"], row.get("pid_started")):
            return None
        return f"its process (pid {row['pid']}) is gone; last heartbeat {age:.0f} s ago"
    if age < STALE_REMOTE_SECONDS:
        return None
    return f"no heartbeat from host {row['host']} for {age:.0f} s"


def recorded_process_alive(row: dict[str, Any]) -> bool:
    """Whether the process a row records (a sweep's scheduler, a run's worker) still
    runs: on this host its pid and start time tell at once; elsewhere a fresh
    heartbeat is all there is."""
    if not row.get("pid"):
        return False
    if row["host"] == host():
        return process_alive(row["pid"], row.get("pid_started"))
    return _age_seconds(row["heartbeat"], datetime.now(timezone.utc)) < STALE_REMOTE_SECONDS


def reap(store: RunStore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the runs among ``rows`` whose process died as ``crashed`` (in the store and
    in ``rows``); returns ``rows``."""
    now = datetime.now(timezone.utc)
    for row in rows:
        reason = crash_reason(row, now)
        # Only if it still says so: the worker may have ended it a moment ago.
        if reason is not None and store.mark_crashed(row["id"], reason, (row["status"],)):
            row.update(store.run_by_name(row["name"]) or {"status": "crashed"})
    return rows


def reap_sweeps(store: RunStore) -> None:
    """End the sweeps whose scheduler died (killed, its machine down): their queued
    runs that no worker took are cancelled, saying how to finish the sweep."""
    for sweep in store.open_sweeps():
        reason = crash_reason({**sweep, "status": "running"})
        if reason is None:
            continue
        how = f"continue it with ml tune --resume {sweep['id']}" if sweep.get("study") else "re-run the sweep with --needed"
        error = f"cancelled: its queue's scheduler stopped ({reason}); {how}"
        for name in store.sweep_names(sweep["id"], "queued"):
            row = store.run_by_name(name)
            if row and not row["pid"]:
                store.set_status(row["id"], "cancelled", ("queued",), ended_at=utcnow(), error=error)
        store.update_sweep(sweep["id"], ended_at=utcnow())


class ResourceMeter:
    """What a process and its children (data loader workers) use: CPU as percent of
    one core since the last reading, resident memory, and, once the process has used
    CUDA, the GPU's memory and utilisation."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self._meters: dict[int, psutil.Process] = {}

    def read(self) -> dict[str, Any]:
        cpu = rss = 0.0
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return {}
        for process in processes:
            # A Process object measures CPU since its previous call: keep one per pid.
            meter = self._meters.setdefault(process.pid, process)
            try:
                cpu += meter.cpu_percent(None)
                rss += meter.memory_info().rss
            except psutil.Error:
                self._meters.pop(process.pid, None)
        usage: dict[str, Any] = {"cpu_percent": round(cpu, 1), "rss_mb": round(rss / 2**20, 1)}
        return usage | _gpu_usage()


def _gpu_usage() -> dict[str, Any]:
    torch = sys.modules.get("torch")  # never import it here: only report what the run uses
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    device = torch.cuda.current_device()
    usage = {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_memory_mb": round(torch.cuda.memory_reserved(device) / 2**20, 1),
        "gpu_total_mb": round(torch.cuda.get_device_properties(device).total_memory / 2**20, 1),
    }
    try:
        usage["gpu_percent"] = torch.cuda.utilization(device)
    except Exception:  # needs the NVML bindings (pynvml), which are optional
        pass
    return usage


class Heartbeat:
    """A thread that keeps a run's heartbeat fresh, through data preparation and
    training alike, and turns a cancel request in the store into SIGINT for this
    process's main thread (which stops the loop at the next batch boundary). Each
    beat also records what the process uses (``ResourceMeter``)."""

    def __init__(self, store: RunRecords | Path, run_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        # A RunStore's connection belongs to its thread: the beat opens its own on the
        # same file. Another store (a cluster worker's relay) is used as it is.
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"vml-heartbeat-{run_id}", daemon=True)
        self._cancel_sent = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        meter = ResourceMeter(os.getpid())
        with contextlib.ExitStack() as stack:
            store = None
            while not self._stop.wait(self.interval):
                try:
                    if store is None:
                        store = stack.enter_context(self._open())
                    store.update_run(self.run_id, heartbeat=utcnow(), resources=json.dumps(meter.read()))
                except (DiskFullError, sqlite3.OperationalError):  # a full disk, a busy store: next beat
                    continue
                if not self._cancel_sent and store.cancel_requested(self.run_id):
                    self._cancel_sent = True
                    _thread.interrupt_main(signal.SIGINT)

    def _open(self) -> contextlib.AbstractContextManager[RunRecords]:
        if isinstance(self.store, RunStore):
            return RunStore(self.store.path)
        if isinstance(self.store, Path):
            return RunStore(self.store)
        return contextlib.nullcontext(self.store)


def parse_age(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` as a duration; ValueError otherwise."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1].strip(), text[-1:].lower()
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    try:
        return timedelta(**{units[unit]: float(number)})
    except OverflowError:  # past timedelta's 999,999,999 days
        raise ValueError(f"{text!r} is longer than any run has lasted (give at most 999999999d)") from None
