"""The Ray backend: a sweep's queue on a Ray cluster (``backend: ray``).

Each run is one Ray task asking for its CPUs and GPUs. The task trains exactly as a
local worker does, but it never opens the project's SQLite file: what it would
write (status, progress, metric points, events, heartbeats) goes through a Ray queue
to the scheduler on the driver, which writes it to the store. ``ml cancel`` reaches a
Ray run through the store: the driver passes the request on to the task.

On a cluster (an ``address``), the nodes need not see the project: the driver starts
the job with a runtime_env that sends vml's own code (``py_modules``) and the project
folder less its trainings and cache (``working_dir``: vergeml.yaml, net.py, the data)
to each node. A task that sees the project at the driver's path (shared storage)
trains there and writes its run folder in place; one that does not trains in Ray's
copy and streams its run folder back through the object store in pieces, which the
driver writes into trainings/NAME as they come.

Ray is an optional extra: ``pip install 'vml[ray]'``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vml.atomic import fsync_dir, shared_mode
from vml.config import SETTING_VARIABLES, ProjectConfig, load_project
from vml.errors import UsageError, disk_full, human_size, is_disk_full
from vml.launch import Feeder
from vml.paths import RUN_PROJECT_FILE, run_dir
from vml.store import RunStore
from vml.store.runs import utcnow
from vml.views import ending

POLL_SECONDS = 0.2
# Store methods a task may call on the driver's store, through its relay.
RELAYED = ("set_status", "update_run", "add_metric_points", "add_event", "delete_metrics_after")
HOST_PREFIX = "ray:"  # a Ray run's host: readers treat it as another host's run
# A run's files come back in pieces of this size, at most BACKPRESSURE of them in the
# object store at a time: the driver holds one piece, never a whole checkpoint.
CHUNK_BYTES = 8 * 1024 * 1024
BACKPRESSURE = 4
# Ray refuses a working_dir package over its gRPC message limit (512 MiB by default);
# a bigger project is not sent, and the nodes then need it on shared storage.
PACKAGE_LIMIT = 512 * 1024 * 1024
# Left out of the copy besides trainings/ and the cache (Ray leaves out .git, .venv,
# venv and __pycache__ itself).
NOT_SENT = (".git", ".venv", "venv", "__pycache__")
# Addresses that start a Ray instance on this machine, which sees the project.
LOCAL_ADDRESSES = (None, "local")


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


def cluster_runtime_env(project: ProjectConfig) -> tuple[dict[str, Any], bool]:
    """The job's runtime_env on a cluster, and whether it sends the project: vml's
    own code, the project settings given on the command line (``ml --model``), and
    the project folder less trainings/, the cache, .git and virtual environments
    when that fits in one Ray package."""
    package = Path(__file__).resolve().parents[1]  # vml/, this file being vml/launch/ray.py
    env: dict[str, Any] = {"py_modules": [str(package)]}
    given = {var: os.environ[var] for var in SETTING_VARIABLES.values() if os.environ.get(var)}
    if given:
        env["env_vars"] = given
    root = project.root
    left_out = [
        p for p in (project.trainings_dir.resolve(), project.cache_dir.resolve()) if p.is_relative_to(root)
    ]
    if _size(root, set(left_out)) > PACKAGE_LIMIT:
        return env, False
    excludes = [f"/{p.relative_to(root).as_posix()}/" for p in left_out] + [f"{name}/" for name in NOT_SENT]
    return {**env, "working_dir": str(root), "excludes": excludes}, True


def _size(root: Path, left_out: set[Path]) -> int:
    """The bytes the project's copy would hold; counting stops past ``PACKAGE_LIMIT``."""
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in NOT_SENT and Path(folder, d) not in left_out]
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # gone while we counted
                continue
            if total > PACKAGE_LIMIT:
                return total
    return total


class _GitignoreIgnored:
    """While Ray packages the project: send what .gitignore names too (data folders
    are often ignored by git, and a run needs them); a .rayignore still leaves files out."""

    VARIABLE = "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"

    def __enter__(self) -> None:
        self._before = os.environ.get(self.VARIABLE)
        os.environ[self.VARIABLE] = "1"

    def __exit__(self, *exc: object) -> None:
        if self._before is None:
            os.environ.pop(self.VARIABLE, None)
        else:
            os.environ[self.VARIABLE] = self._before


def train_task(
    root: str,
    name: str,
    row: dict[str, Any],
    project_text: str,
    queue: Any,
    cancels: Any,
    copy_back: bool,
    sent: bool,
) -> Iterator[tuple[str, int, bytes]]:
    """The body of a run's Ray task: train it with ``project_text`` (its project
    file), then yield its run folder's files in pieces ``(path in the folder, file
    size, piece)``, none when the folder is on storage the driver sees too."""
    from vml.train.runner import start_queued_run

    relay = Relay(queue, row, cancels)
    shared_folder = run_dir(Path(root), name)
    shared = shared_folder.is_dir() and not copy_back
    if shared or (not sent and Path(root).is_dir()):
        project_root = Path(root)
    elif sent:
        project_root = Path.cwd()  # Ray's copy of the project: the job's working_dir
    else:
        error = (
            f"this Ray node sees no project at {root} and none was sent with the task (one over "
            f"{human_size(PACKAGE_LIMIT)} is not): put it on storage every node mounts at {root}, "
            "or leave big files out with a .rayignore"
        )
        relay.set_status(row["id"], "failed", ("queued",), ended_at=utcnow(), error=error)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"vml-{name}-"))
    try:
        own = scratch / RUN_PROJECT_FILE
        own.write_text(project_text, encoding="utf-8")
        project = load_project(project_root, own)
        folder = shared_folder if shared else scratch / "run"
        folder.mkdir(exist_ok=True)
        with open(os.devnull, "w") as quiet:
            start_queued_run(project, name, stderr=quiet, store=relay, folder=folder)
        if not shared:
            yield from _pieces(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _pieces(folder: Path) -> Iterator[tuple[str, int, bytes]]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name, size = path.relative_to(folder).as_posix(), path.stat().st_size
        with path.open("rb") as handle:
            yield name, size, handle.read(CHUNK_BYTES)  # the first piece: empty for an empty file
            while piece := handle.read(CHUNK_BYTES):
                yield name, size, piece


class _Incoming:
    """A run's files arriving in pieces: each is written to a temporary file beside
    its place and renamed there once whole, so a reader never sees half a checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._path: Path | None = None
        self._tmp: Path | None = None
        self._handle: Any = None
        self._left = 0

    def add(self, name: str, size: int, piece: bytes) -> None:
        try:
            if self._handle is None:
                self._open(name, size)
            self._handle.write(piece)
            self._left -= len(piece)
            if self._left <= 0:
                self._close()
        except OSError as exc:
            path = self._path
            self.discard()
            if is_disk_full(exc) and path is not None:
                raise disk_full(path, size) from exc
            raise

    def _open(self, name: str, size: int) -> None:
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise ValueError(f"a task sent a file outside its run folder: {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self._path, self._tmp, self._handle, self._left = path, Path(tmp), os.fdopen(fd, "wb"), size

    def _close(self) -> None:
        assert self._path is not None and self._tmp is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        os.chmod(self._tmp, shared_mode())
        os.replace(self._tmp, self._path)
        fsync_dir(self._path.parent)
        self._tmp = None

    def discard(self) -> None:
        """Drop a file that did not arrive whole (the task or its node died)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


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
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        started_here, sent = not ray.is_initialized(), False
        if started_here:
            # A local instance unless told where the cluster is; this process is the driver.
            env = None
            if self.address not in LOCAL_ADDRESSES:
                env, sent = cluster_runtime_env(self.project)
            with _GitignoreIgnored():
                ray.init(address=self.address, runtime_env=env, include_dashboard=False, log_to_driver=False)
        task = ray.remote(train_task).options(
            num_cpus=self.cpus_per_run,
            num_gpus=self.gpus_per_run,
            max_retries=0,
            _generator_backpressure_num_objects=BACKPRESSURE,
        )
        # The relay's actors live on the driver's node and take no CPU from the runs.
        here = {
            "num_cpus": 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=True
            ),
        }
        queue, cancels = Queue(actor_options=here), ray.remote(CancelRequests).options(**here).remote()
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
                        text = (own if own.is_file() else self.project.file).read_text(encoding="utf-8")
                        ref = task.remote(
                            str(self.project.root), name, row, text, queue, cancels, self.copy_back, sent
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

    def _finish(self, store: RunStore, queue: Any, pieces: Any, name: str) -> None:
        """A run's task has trained: write the files it streams back, then record how it ended."""
        ray = require_ray()
        incoming, error = _Incoming(self.project.trainings_dir / name), None
        try:
            for ref in pieces:
                incoming.add(*ray.get(ref))
                self._drain(store, queue)  # the other runs go on recording meanwhile
        except Exception as exc:  # the task died (its worker, its node), or the disk filled
            incoming.discard()
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._drain(store, queue)  # what it sent before it ended
        row = store.worker_gone(name, f"its Ray task ended without recording an end ({error or 'no error'})")
        if row is not None:
            if self.feeder is not None:
                row = self.feeder.settle(store, row)
            self.ended[name] = row["status"]
            self.say(name, ending(row))
            if error and row["status"] not in ("crashed", "failed"):
                self.say(name, f"note: its files did not all come back ({error})")


class CancelRequests:
    """A Ray actor holding the ids of the runs asked to stop (the driver writes, each
    task's heartbeat reads)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def request(self, run_id: int) -> None:
        self._ids.add(run_id)

    def requested(self, run_id: int) -> bool:
        return run_id in self._ids
