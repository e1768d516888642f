"""A project's runs kept current for a live view (the dashboard), as light rows.

At 100,000 runs, reading even a few columns of every run each second kept an idle
dashboard at 95% of a core, and holding every run's full record took 780 MB. So a
refresh first asks the store's revision (one row, moved by every insert, update and
delete of a run) and stats the trainings folder: when neither moved and no run is live,
it reads nothing more. Otherwise it reads only the rows changed since
(``runs_changed_since``), reaps only the live runs, and lists the folder only when it
changed. Each run is held as a light row: the public fields the table shows, sorts and
filters on, and only the hyperparameters a shown column or a filter names. A screen
that needs a run's whole record reads it (``Project.find_run``). Metric histories are
read only for the runs being looked at, and a run that has ended keeps its history in
memory: it cannot change any more.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from vml import api
from vml.store.runs import ACTIVE_STATES, DELETED
from vml.store.selection import FIELD_COLUMNS
from vml.views import LIST_COLUMNS

HISTORY_CACHE_RUNS = 64
# The public fields every light row holds: what progress and ETA are worked out from,
# what the text filter looks in, and what finds a run's sweep or study.
LIGHT_FIELDS = (
    "instance",
    "model",
    "status",
    "training_start",
    "epoch",
    "epochs",
    "batch",
    "batches",
    "sweep",
    "trial",
)
# Held unless told otherwise: what ml list shows, and what keys a metric history (a
# resumed run ends again).
DEFAULT_COLUMNS = (*LIST_COLUMNS, "training_end")
# A change to the trainings folder within this long of listing it may share the
# listing's mtime (the clock behind mtimes ticks every few ms): list it again then.
RACY_NS = 2_000_000_000
NO_HYPERPARAMETERS: MappingProxyType[str, Any] = MappingProxyType({})


class LiveRun(dict):
    """A light row: some of a public run's fields (``ml list --format json``) and only the
    held hyperparameters. ``id`` is its row's id in the store, ``stored`` the state
    stored there (``status`` may read ``deleted``)."""

    __slots__ = ("id", "stored")
    id: int
    stored: str


class LiveRuns:
    """The runs of ``project`` as light rows holding ``columns`` (public fields or
    hyperparameters; ``hyperparameters`` holds them all) besides ``LIGHT_FIELDS``. Call
    ``refresh()`` from one thread at a time. A run that did not change keeps its row
    object; ``changes`` lists the ``(before, after)`` rows of what the last refresh
    changed (None: new, or gone), unless it read every run (``reset``)."""

    def __init__(self, project: api.Project, columns: Iterable[str] = DEFAULT_COLUMNS) -> None:
        self.project = project
        self._fields: tuple[str, ...] = LIGHT_FIELDS
        self._keys: frozenset[str] | None = frozenset()  # held hyperparameters; None: all of them
        self._by_id: dict[int, LiveRun] = {}
        self._id_of: dict[str, int] = {}
        self._active: dict[int, dict[str, Any]] = {}  # full rows of the live runs, to reap them
        self._revision: int | None = None  # None: read every run on the next refresh
        self._folders: set[str] = set()
        self._folder_stamp: tuple[int, int, int] | None = None
        # ((thread, inode of the file), RunStore) of the last refresh
        self._store: tuple[tuple[int, int], Any] | None = None
        self.states: Counter[str] = Counter()  # how many runs read each state
        self.trials = 0  # how many runs are trials of a study (ml tune)
        self.changes: list[tuple[LiveRun | None, LiveRun | None]] = []
        self.reset = False
        self.rows_read = 0  # run rows read from the store so far: how a test sees an idle refresh
        self.hold(columns)

    def hold(self, columns: Iterable[str]) -> None:
        """Hold these public columns too (shown, or named by a filter); if some were not
        held, the next refresh reads every run again."""
        columns = set(columns)
        fields = tuple(sorted(c for c in columns if c in FIELD_COLUMNS and c not in self._fields))
        keys = None if "hyperparameters" in columns else frozenset(columns - set(FIELD_COLUMNS))
        more_keys = self._keys is not None and (keys is None or not keys <= self._keys)
        if fields or more_keys:
            self._fields += fields
            self._keys = None if keys is None or self._keys is None else self._keys | keys
            self._revision = None

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, name: str) -> LiveRun | None:
        """Run ``name`` as last read, or None."""
        run_id = self._id_of.get(name)
        return None if run_id is None else self._by_id.get(run_id)

    def all(self) -> list[LiveRun]:
        """Every run, in no particular order (a copy: safe while another thread refreshes)."""
        return list(self._by_id.values())

    @property
    def runs(self) -> list[LiveRun]:
        """Every run, newest first (sorted on each call)."""
        return sorted(self._by_id.values(), key=newest, reverse=True)

    @property
    def active(self) -> list[LiveRun]:
        """The queued and running runs: their rows move, their processes are watched."""
        return [run for run_id in self._active if (run := self._by_id.get(run_id)) is not None]

    def refresh(self) -> bool:
        """Read what changed since the last call; True if any run did."""
        from vml.liveness import reap, reap_sweeps

        self.changes, self.reset = [], False
        try:
            inode = os.stat(self.project.db_path).st_ino
        except FileNotFoundError:
            self._store, self._revision = None, None
            for run_id in list(self._by_id):
                self._forget(run_id)
            return bool(self.changes)
        moved = self._list_folders()
        store = self._open(inode)
        revision = store.revision()
        if revision == self._revision and not moved and not self._active:
            return False  # nothing changed: nothing read
        fresh: dict[int, dict[str, Any]] = {}
        if self._revision is None or revision < self._revision:
            self._read_all(store)
        else:
            fresh = {row["id"]: row for row in store.runs_changed_since(self._revision)}
            self.rows_read += len(fresh)
            for run_id, row in fresh.items():
                if row["status"] in ACTIVE_STATES:
                    self._active[run_id] = row
                else:
                    self._active.pop(run_id, None)
            held = len(self._by_id) + sum(1 for run_id in fresh if run_id not in self._by_id)
            if store.count() != held:  # some were deleted
                for run_id in self._by_id.keys() - store.run_ids() - fresh.keys():
                    self._forget(run_id)
        # Reaped after the read: a row read a while ago (a paused dashboard) has an old
        # heartbeat and would look dead.
        for row in reap(store, list(self._active.values())):
            if row["status"] not in ACTIVE_STATES:
                del self._active[row["id"]]
                fresh[row["id"]] = row
        if self._active:
            reap_sweeps(store)
        self._revision = revision
        for row in fresh.values():
            self._keep(self._light(row))
        for name in () if self.reset else moved:
            run = self.get(name)
            if run is not None and self._status(name, run.stored) != run["status"]:
                self._keep(_copy(run, status=self._status(name, run.stored)))
        return self.reset or bool(self.changes)

    def _open(self, inode: int) -> Any:
        """The store (file ``inode``), open from one refresh to the next: closing it
        would make SQLite remove its WAL files beside the run folders, and so move the
        folder's mtime that tells whether a run's folder went. A connection serves one
        thread: a refresh in another opens its own and lets the last one go."""
        from vml.store import RunStore

        opened = (threading.get_ident(), inode)
        if self._store is None or self._store[0] != opened:
            if self._store is not None and self._store[0][1] != inode:
                self._revision = None  # another store in its place: its revisions are not ours
            self._store = (opened, RunStore(self.project.db_path))
        return self._store[1]

    def _read_all(self, store: Any) -> None:
        """Every run again, reading only the held columns (and live runs in full)."""
        columns = ["id", *(FIELD_COLUMNS[field] for field in self._fields)]
        if self._keys != frozenset():
            columns.append("hyperparameters")
        marks = store.run_marks(", ".join(f"[{column}]" for column in columns))
        self._active = {row["id"]: row for row in store.runs(ACTIVE_STATES)}
        self.rows_read += len(marks) + len(self._active)
        self._by_id, self._id_of, self.states, self.trials = {}, {}, Counter(), 0
        self.reset = True
        while marks:  # each run's read row freed as its light row is made: a lower peak
            run_id, mark = marks.popitem()
            row = self._active.get(run_id)
            if row is None:
                row = dict(zip(columns, mark, strict=True))
                if "hyperparameters" in row:
                    row["hyperparameters"] = json.loads(row["hyperparameters"] or "{}")
            self._add(self._light(row))

    def _light(self, row: dict[str, Any]) -> LiveRun:
        """A store row (or the held columns of one) as a light row."""
        run = LiveRun()
        for field in self._fields:
            value = row[FIELD_COLUMNS[field]]
            # Few distinct values, one string each: 100,000 runs hold one "finished".
            run[field] = sys.intern(value) if field in ("model", "status", "sweep") and value else value
        run.stored = run["status"]
        run["status"] = self._status(run["instance"], run.stored)
        stored = row.get("hyperparameters") or {}
        if self._keys is None:
            run["hyperparameters"] = stored
        else:
            run["hyperparameters"] = {k: stored[k] for k in self._keys if k in stored} or NO_HYPERPARAMETERS
        run.id = row["id"]
        return run

    def _status(self, name: str, stored: str) -> str:
        """The state a run reads: an ended run whose folder was deleted reads ``deleted``."""
        return stored if stored in ACTIVE_STATES or name in self._folders else DELETED

    def _add(self, run: LiveRun) -> None:
        self._by_id[run.id] = run
        self._id_of[run["instance"]] = run.id
        self._count(run, 1)

    def _keep(self, run: LiveRun) -> None:
        """Hold ``run`` in place of the row of its id."""
        old = self._by_id.get(run.id)
        if old is not None:
            self._count(old, -1)
            del self._id_of[old["instance"]]
        self._add(run)
        if not self.reset:
            self.changes.append((old, run))

    def _forget(self, run_id: int) -> None:
        old = self._by_id.pop(run_id)
        del self._id_of[old["instance"]]
        self._active.pop(run_id, None)
        self._count(old, -1)
        self.changes.append((old, None))

    def _count(self, run: LiveRun, sign: int) -> None:
        self.states[run["status"]] += sign
        self.trials += sign * (run["trial"] is not None)

    def _list_folders(self) -> set[str]:
        """The run folders that appeared or went since the last listing: none without a
        listing while the trainings folder's mtime stays."""
        folder = self.project.trainings_dir
        try:
            stat = os.stat(folder)
        except FileNotFoundError:
            moved, self._folders, self._folder_stamp = self._folders, set(), None
            return moved
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_nlink)
        if stamp == self._folder_stamp:
            return set()
        listed_at = time.time_ns()
        names = set(os.listdir(folder))
        moved, self._folders = names ^ self._folders, names
        self._folder_stamp = None if listed_at - stat.st_mtime_ns < RACY_NS else stamp
        return moved


def _copy(run: LiveRun, **fields: Any) -> LiveRun:
    copy = LiveRun(run, **fields)
    copy.id, copy.stored = run.id, run.stored
    return copy


def newest(run: LiveRun) -> tuple[str, int]:
    """The order of ``ml list``: by start, then by id (newest first when reversed)."""
    return (run["training_start"] or "", run.id)


class MetricHistories:
    """Metric points of the runs being looked at. An ended run's points are kept (up
    to ``HISTORY_CACHE_RUNS`` runs, least recently used dropped); a live run's are
    re-read on every call."""

    def __init__(self, project: api.Project) -> None:
        self.project = project
        self._ended: OrderedDict[tuple[str, str | None], list[dict[str, Any]]] = OrderedDict()
        self.reads = 0  # store reads so far: how a test sees the cache work

    def points(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The metric points of ``run`` (a public run), in step order."""
        # Keyed by the end time too: a resumed run ends again with a new history.
        key = (run["instance"], run["training_end"])
        if key in self._ended:
            self._ended.move_to_end(key)
            return self._ended[key]
        from vml.store import RunStore

        self.reads += 1
        with RunStore(self.project.db_path) as store:
            row = store.run_by_name(run["instance"])
            points = store.metrics(row["id"]) if row else []
        if run["status"] not in ACTIVE_STATES:
            self._ended[key] = points
            if len(self._ended) > HISTORY_CACHE_RUNS:
                self._ended.popitem(last=False)
        return points


def metric_names(points: list[dict[str, Any]], pattern: str = "") -> list[str]:
    """The metric keys among ``points`` that match ``pattern`` (a name, a glob like
    ``val_*``, or a part of a name), in first-seen order."""
    keys = list(dict.fromkeys(point["key"] for point in points))
    if not pattern:
        return keys
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return [key for key in keys if fnmatch.fnmatchcase(key, glob)]
