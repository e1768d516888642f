"""The Ray backend: a sweep's queue on a Ray cluster (``backend: ray``).

Each run is one Ray task asking for its CPUs and GPUs. The task trains exactly as a
local worker does, but it never opens the project's SQLite file: what it would
write (status, progress, metric points, events, heartbeats) goes through a Ray queue
to the scheduler on the driver, which writes it to the store. A run's files
(checkpoints, log) are written to its folder when the worker sees the project on
shared storage, and otherwise sent back when the task ends. ``ml cancel`` reaches a
Ray run through the store: the driver passes the request on to the task.

Ray is an optional extra: ``pip install 'vml[ray]'``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vml.atomic import write_bytes_atomic
from vml.config import ProjectConfig
from vml.errors import UsageError
from vml.launch import Feeder
from vml.paths import PROJECT_FILE, RUN_PROJECT_FILE, run_dir
from vml.store import RunStore
from vml.store.runs import utcnow
from vml.views import ending

POLL_SECONDS = 0.2
# Store methods a task may call on the driver's store, through its relay.
RELAYED = ("set_status", "update_run", "add_metric_points", "add_event", "delete_metrics_after")
HOST_PREFIX = "ray:"  # a Ray run's host: readers treat it as another host's run


def require_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("backend ray needs Ray: pip install 'vml[ray]' (or use backend: local)") from None
    return ray


class Relay:
    """The store of a run trained in a Ray task (a ``vml.store.RunRecords``): reads
    come from the run's row as the driver sent it, writes go to the driver through
    ``queue``."""

    path = None

    def __init__(self, queue: Any, row: dict[str, Any], cancels: Any) -> None:
        self._queue, self._row, self._cancels = queue, dict(row), cancels
        self._lock = threading.Lock()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        return dict(self._row) if name == self._row["name"] else None

    def set_status(self, run_id: int, status: str, expect: Any, **fields: Any) -> bool:
        expect = tuple(expect)
        with self._lock:
            if self._row["status"] not in expect:
                return False
            fields = _as_ray_host(fields)
            self._row.update(status=status, **fields)
        self._send("set_status", run_id, status, expect, **fields)
        return True

    def update_run(self, run_id: int, **fields: Any) -> None:
        fields = _as_ray_host(fields)
        with self._lock:
            self._row.update(fields)
        self._send("update_run", run_id, **fields)

    def add_metric_points(self, points: list[tuple]) -> None:
        if points:
            self._send("add_metric_points", list(points))

    def add_metrics(self, rows: Any) -> None:
        self.add_metric_points(
            [(r["run_id"], r["key"], r["epoch"], r["step"], r["value"], r["time"]) for r in rows]
        )

    def add_event(self, run_id: int, kind: str, message: str) -> None:
        self._send("add_event", run_id, kind, message)

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        self._send("delete_metrics_after", run_id, step)

    def cancel_requested(self, run_id: int) -> bool:
        ray = require_ray()
        return bool(ray.get(self._cancels.requested.remote(run_id)))

    def _send(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._queue.put((method, args, kwargs))


def _as_ray_host(fields: dict[str, Any]) -> dict[str, Any]:
    if "host" in fields and not str(fields["host"]).startswith(HOST_PREFIX):
        return {**fields, "host": HOST_PREFIX + str(fields["host"])}
    return fields


def apply(store: RunStore, message: tuple[str, tuple, dict]) -> None:
    """Write one relayed call to the driver's store."""
    method, args, kwargs = message
    if method not in RELAYED:
        raise ValueError(f"a task may not call {method!r} on the store")
    getattr(store, method)(*args, **kwargs)


def train_task(
    root: str,
    name: str,
    row: dict[str, Any],
    project_file: str | None,
    queue: Any,
    cancels: Any,
    copy_back: bool,
) -> dict[str, bytes]:
    """The body of a run's Ray task: train it and return the files to copy back (none
    when the run folder is on storage the driver sees too)."""
    from vml.config import load_project
    from vml.train.runner import start_queued_run

    project_root = Path(root) if Path(root, PROJECT_FILE).is_file() else Path.cwd()  # shared, or Ray's copy
    folder = run_dir(project_root, name)
    shared = folder.is_dir() and not copy_back
    if not shared:
        folder = Path(tempfile.mkdtemp(prefix=f"vml-{name}-"))
    own = None
    if project_file is not None:
        own = folder / RUN_PROJECT_FILE
        own.write_text(project_file, encoding="utf-8")
    project = load_project(project_root, own)
    with open(os.devnull, "w") as quiet:
        start_queued_run(project, name, stderr=quiet, store=Relay(queue, row, cancels), folder=folder)
    if shared:
        return {}
    return {
        p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != RUN_PROJECT_FILE
    }


class RayScheduler:
    """Runs the queued runs of ``sweep`` as Ray tasks, ``parallel`` at a time, each
    asking for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs."""

    def __init__(
        self,
        project: ProjectConfig,
        sweep: str,
        parallel: int,
        gpus_per_run: int = 0,
        cpus_per_run: int = 1,
        address: str | None = None,
        say: Callable[[str, str], None] = lambda name, event: None,
        copy_back: bool = False,
    ) -> None:
        self.project, self.sweep, self.parallel = project, sweep, parallel
        self.gpus_per_run, self.cpus_per_run, self.address = gpus_per_run, cpus_per_run, address
        self.say, self.copy_back = say, copy_back
        self.ended: dict[str, str] = {}
        self.feeder: Feeder | None = None

    def run(self) -> dict[str, str]:
        """Start and follow the runs until none is queued or running; ``ended``."""
        ray = require_ray()
        from ray.util.queue import Queue

        started_here = not ray.is_initialized()
        if started_here:
            # A local instance unless told where the cluster is; this process is the driver.
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(train_task).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0
        )
        queue, cancels = Queue(), ray.remote(CancelRequests).remote()
        in_flight: dict[Any, str] = {}
        try:
            with RunStore(self.project.db_path) as store:
                while True:
                    self._drain(store, queue)
                    self._forward_cancels(store, in_flight, cancels)
                    # A task's run reads queued until its first relayed write arrives.
                    started = set(in_flight.values())
                    waiting = [n for n in store.sweep_names(self.sweep, "queued") if n not in started]
                    if self.feeder is not None:
                        self.feeder.feed(store, self.parallel - len(in_flight) - len(waiting))
                        waiting = [n for n in store.sweep_names(self.sweep, "queued") if n not in started]
                    queued = waiting
                    for name in queued[: self.parallel - len(in_flight)]:
                        row = store.run_by_name(name)
                        own = run_dir(self.project.root, name) / RUN_PROJECT_FILE
                        text = own.read_text(encoding="utf-8") if own.is_file() else None
                        ref = task.remote(
                            str(self.project.root), name, row, text, queue, cancels, self.copy_back
                        )
                        in_flight[ref] = name
                        self.say(
                            name, f"started as a Ray task ({self.cpus_per_run} CPU, {self.gpus_per_run} GPU)"
                        )
                    store.update_sweep(self.sweep, heartbeat=utcnow())
                    if not in_flight and (self.feeder is None or self.feeder.exhausted):
                        break
                    if in_flight:
                        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
                        for ref in done:
                            self._finish(store, queue, ref, in_flight.pop(ref))
                if self.feeder is not None:
                    self.feeder.finish(store)
                store.update_sweep(self.sweep, ended_at=utcnow())
        finally:
            if started_here:
                ray.shutdown()
        return self.ended

    def _drain(self, store: RunStore, queue: Any) -> None:
        while not queue.empty():
            for message in queue.get_nowait_batch(queue.qsize()):
                apply(store, message)

    def _forward_cancels(self, store: RunStore, in_flight: dict[Any, str], cancels: Any) -> None:
        for name in in_flight.values():
            row = store.run_by_name(name)
            if row and row["cancel_requested"]:
                cancels.request.remote(row["id"])

    def _finish(self, store: RunStore, queue: Any, ref: Any, name: str) -> None:
        ray = require_ray()
        try:
            files, error = ray.get(ref), None
        except Exception as exc:  # the task died: its worker, its node
            files, error = {}, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._drain(store, queue)  # what it sent before it ended
        folder = self.project.trainings_dir / name
        for file_name, data in files.items():
            write_bytes_atomic(folder / file_name, data)
        row = store.worker_gone(name, f"its Ray task ended without recording an end ({error or 'no error'})")
        if row is not None:
            if self.feeder is not None:
                row = self.feeder.settle(store, row)
            self.ended[name] = row["status"]
            self.say(name, ending(row))


class CancelRequests:
    """A Ray actor holding the ids of the runs asked to stop (the driver writes, each
    task's heartbeat reads)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def request(self, run_id: int) -> None:
        self._ids.add(run_id)

    def requested(self, run_id: int) -> bool:
        return run_id in self._ids
