"""A project's runs and metric histories kept current for a live view (the dashboard).

Re-reading and decoding every run each second costs ~0.35 s at 10,000 runs, so a
refresh reads one light row per run and re-reads in full only the runs that are new,
changed or still live. Metric histories are read only for the runs being looked at,
and a run that has ended keeps its history in memory: it cannot change any more.
"""

from __future__ import annotations

import fnmatch
import os
from collections import OrderedDict
from typing import Any

from vml import api
from vml.store.runs import ACTIVE_STATES, DELETED, TEST_METRICS
from vml.views import public_run

# What changes on an ended run (ml test, ml resume, a crash found): re-read it then.
MARK_COLUMNS = f"id, status, epoch, step, ended_at, {', '.join(TEST_METRICS)}, best_metric, error"
HISTORY_CACHE_RUNS = 64


class LiveRuns:
    """The runs of ``project`` in the shape ``ml list`` shows, newest first. Call
    ``refresh()`` from one thread at a time; unchanged runs keep their dict, so a
    caller can tell what changed by identity."""

    def __init__(self, project: api.Project) -> None:
        self.project = project
        self.runs: list[dict[str, Any]] = []
        self._rows: dict[int, dict[str, Any]] = {}
        self._marks: dict[int, tuple[Any, ...]] = {}
        self._public: dict[int, dict[str, Any]] = {}

    def refresh(self) -> bool:
        """Read what changed since the last call; True if any run did."""
        from vml.liveness import reap, reap_sweeps
        from vml.store import RunStore

        if not self.project.db_path.exists():
            changed, self.runs = bool(self.runs), []
            return changed
        with RunStore(self.project.db_path) as store:
            marks = store.run_marks(MARK_COLUMNS)
            stale = [
                run_id
                for run_id, mark in marks.items()
                if self._marks.get(run_id) != mark or mark[1] in ACTIVE_STATES
            ]
            fresh = store.runs_by_id(stale)
            reap(store, [row for row in fresh if row["status"] in ACTIVE_STATES])
            reap_sweeps(store)
        gone = self._rows.keys() - marks.keys()
        for run_id in gone:
            del self._rows[run_id], self._marks[run_id]
            self._public.pop(run_id, None)
        for row in fresh:
            self._rows[row["id"]] = row
            self._marks[row["id"]] = marks[row["id"]]
        folders = _folder_names(self.project.trainings_dir)
        fresh_ids = {row["id"] for row in fresh}
        changed = bool(gone)
        for run_id, row in self._rows.items():
            status = row["status"]
            # "deleted" is not stored: an ended run whose folder went shows so.
            if status not in ACTIVE_STATES and row["name"] not in folders:
                status = DELETED
            old = self._public.get(run_id)
            if run_id in fresh_ids or old is None or old["status"] != status:
                self._public[run_id] = public_run(row, status)
                changed = True
        if changed:
            order = sorted(self._rows.values(), key=lambda r: (r["started_at"] or "", r["id"]), reverse=True)
            self.runs = [self._public[row["id"]] for row in order]
        return changed

    def row(self, name: str) -> dict[str, Any] | None:
        """The store row of run ``name`` as last read (pid, host, heartbeat, resources)."""
        return next((row for row in self._rows.values() if row["name"] == name), None)


def _folder_names(folder: os.PathLike[str]) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


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
