"""Recorded runs as users see them, read through the store's indexes.

One run is found by name, ``@name``, a unique prefix or ``@last`` with an index
lookup; a listing is filtered, sorted and cut to a page in SQL
(``vml.store.selection``) and read as it is iterated. Only the rows read are reaped
(a live run whose process died reads ``crashed``) and looked at on disk (an ended run
whose folder went reads ``deleted``). At 100,000 runs this keeps ``ml show`` and
``Run.status()`` to a few milliseconds; reading every run first took 2-4 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vml.errors import NotFoundError, UsageError, did_you_mean
from vml.liveness import reap, reap_sweeps
from vml.paths import db_path, run_dir, trainings_dir
from vml.store import RunStore
from vml.store.runs import ACTIVE_STATES, DELETED
from vml.store.selection import Selection
from vml.views import public_run

# Below this many rows a folder check is a stat each; above, one listing of the folder.
STAT_ROWS = 1_000


def find(root: Path, ref: str) -> dict[str, Any]:
    """The store row of a run by full name, ``@name``, a unique prefix, or ``@last`` (the
    newest); reaped and with ``deleted`` read from its folder."""
    if not db_path(root).exists():
        raise NotFoundError("there are no runs yet (start one with: ml train)")
    with RunStore(db_path(root)) as store:
        row = store.newest_run() if ref == "@last" else _by_name(store, ref.removeprefix("@"), ref)
        if row is None:
            raise NotFoundError("there are no runs yet (start one with: ml train)")
        if row["status"] in ACTIVE_STATES:
            reap(store, [row])
            reap_sweeps(store)
            row = store.run_by_name(row["name"]) or row
    row["status"] = _status(row["name"], row["status"], _Folders(root, many=False))
    return row


def _by_name(store: RunStore, name: str, ref: str) -> dict[str, Any] | None:
    row = store.run_by_name(name)
    if row is not None:
        return row
    matches, total = store.runs_named_like(name, 10)
    if total == 1:
        return matches[0]
    if total:
        shown = ", ".join(run["name"] for run in matches)
        raise UsageError(f"{ref!r} matches {total} runs: {shown} (type more of the name)")
    if store.count() == 0:
        return None
    hint = did_you_mean(name, store.names(), "ml list shows the runs")
    raise NotFoundError(f"no run named {ref!r} ({hint})")


def rows(root: Path, selection: Selection, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The store rows ``selection`` picks, in its order, at most ``limit``, as they are
    read: live runs reaped first, each with ``deleted`` read from its folder."""
    if not db_path(root).exists():
        return
    folders = _Folders(root, many=limit is None or limit > STAT_ROWS)
    with _reaped(root, selection) as store:
        kept = 0
        for row in store.select(selection, limit if selection.exact else None):
            row["status"] = _status(row["name"], row["status"], folders)
            if not selection.exact and not _keeps(
                selection, row["status"], lambda row=row: row["hyperparameters"]
            ):
                continue
            yield row
            kept += 1
            if limit is not None and kept >= limit:
                return


def public_runs(root: Path, selection: Selection, limit: int | None = None) -> list[dict[str, Any]]:
    """The runs ``selection`` picks in the shape ``ml list --format json`` shows."""
    return [public_run(row) for row in rows(root, selection, limit)]


def json_lines(root: Path, selection: Selection) -> Iterator[str]:
    """Each run ``selection`` picks as one line of JSON, read and written a run at a
    time: 100,000 runs stream in constant memory."""
    if not db_path(root).exists():
        return
    folders = _Folders(root, many=True)
    with _reaped(root, selection) as store:
        for name, stored, text in store.select_json(selection):
            status = _status(name, stored, folders)
            if not selection.exact:
                hyperparameters = lambda text=text: json.loads(text)["hyperparameters"]  # noqa: E731
                if not _keeps(selection, status, hyperparameters):
                    continue
            if status != stored:
                text = json.dumps(json.loads(text) | {"status": status})
            yield text


def count(root: Path, selection: Selection) -> int:
    """How many runs ``selection`` picks."""
    if not db_path(root).exists():
        return 0
    if any(c.column == "hyperparameters" for c in selection.conditions):
        return sum(1 for _ in json_lines(root, selection))
    with _reaped(root, selection) as store:
        if selection.exact:
            return store.count_selected(selection)
        folders = _Folders(root, many=True)
        return sum(
            _keeps(selection, _status(name, status, folders), dict)
            for name, status in store.select_names(selection)
        )


@contextmanager
def _reaped(root: Path, selection: Selection) -> Iterator[RunStore]:
    """The store, its live runs whose process died marked crashed, and the selection's
    conditions checked against the columns' types."""
    with RunStore(db_path(root)) as store:
        reap(store, store.runs(ACTIVE_STATES))
        reap_sweeps(store)
        _check_numbers(store, selection)
        yield store


def reap_live(root: Path) -> None:
    """Mark the live runs whose process died ``crashed`` (and end sweeps whose
    scheduler died), reading only the live runs."""
    if db_path(root).exists():
        with _reaped(root, Selection()):
            pass


def hyperparameter_keys(root: Path) -> set[str]:
    """Every hyperparameter name a run of the project was recorded with."""
    if not db_path(root).exists():
        return set()
    with RunStore(db_path(root)) as store:
        return store.hyperparameter_keys()


def _check_numbers(store: RunStore, selection: Selection) -> None:
    """Comparing a column that holds numbers with text is an error, as in Python."""
    for condition in selection.conditions:
        if condition.column in ("status", "hyperparameters") or isinstance(condition.value, (int, float)):
            continue
        if store.holds_number(condition.column, selection.states):
            raise condition.number_error()


def _keeps(selection: Selection, status: str, hyperparameters: Callable[[], Any]) -> bool:
    """What SQL left to Python: the state a run reads (``deleted``) and conditions on
    the whole ``hyperparameters`` mapping (read only then)."""
    if selection.states is not None and status not in selection.states:
        return False
    for condition in selection.conditions:
        if condition.column == "status" and not condition.matches(status):
            return False
        if condition.column == "hyperparameters" and not condition.matches(hyperparameters()):
            return False
    return True


class _Folders:
    """Which run folders exist: a stat each for a few rows, one listing for many."""

    def __init__(self, root: Path, many: bool) -> None:
        self.root = root
        self._names: set[str] | None = None
        if many:
            try:
                self._names = set(os.listdir(trainings_dir(root)))
            except FileNotFoundError:
                self._names = set()

    def __contains__(self, name: str) -> bool:
        if self._names is not None:
            return name in self._names
        return run_dir(self.root, name).is_dir()


def _status(name: str, status: str, folders: _Folders) -> str:
    """The state a run reads: an ended run whose folder was deleted reads ``deleted``
    (a live one keeps its state: it can still be cancelled)."""
    return status if status in ACTIVE_STATES or name in folders else DELETED
