"""The rows of the dashboard's runs table: their order, cells and column widths, kept
up to date from what a refresh changed.

At 100,000 runs, sorting every run, working out every row's cells and measuring every
column again each second cost more than the refresh's read. Here a refresh costs what
it changed: a changed run leaves its place (found by bisection on the key it was placed
with) and takes its new one, only its cells are worked out again, and the column widths
come from counts of the cells' widths, so a row that narrows or goes needs no rescan.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from typing import Any

from vml.live import LiveRun, LiveRuns, newest
from vml.views import METRIC_COLUMNS, cell, duration, eta_seconds, percent_done, run_value, sort_by

BAR_WIDTH = 10
# Columns whose cells differ from run to run; the others repeat (progress, epoch, a
# learning rate) and are held once each.
UNIQUE_COLUMNS = frozenset(
    ("instance", "training_start", "training_end", "fingerprint", "error", *METRIC_COLUMNS)
)
Sort = tuple[str, bool]  # a column and whether descending
Cells = tuple[str, ...]


def progress_cell(run: dict[str, Any]) -> str:
    """A text bar and percentage for a run's progress: ``█████░░░░░  50.0%``."""
    percent = percent_done(run)
    filled = round(BAR_WIDTH * percent / 100)
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {percent:5.1f}%"


def row_cells(run: dict[str, Any], columns: list[str], marked: bool = False) -> list[str]:
    """A run's row in the dashboard (a marked run's name with a dot)."""
    cells = []
    for column in columns:
        if column == "progress":
            cells.append(progress_cell(run))
        elif column == "eta":
            eta = eta_seconds(run)
            cells.append("-" if eta is None else duration(eta))
        elif column == "instance" and marked:
            cells.append(f"● {run['instance']}")
        else:
            cells.append(cell(run, column))
    return cells


def sort_value(run: dict[str, Any], column: str) -> Any:
    if column == "progress":
        return percent_done(run)
    if column == "eta":
        return eta_seconds(run)
    return run_value(run, column)


def sorted_runs(runs: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
    """``runs`` by ``column`` (numbers before text), runs without a value last.
    ``sort_by`` orders them by the dashboard's sort key: progress and eta are
    computed, and a hyperparameter may hold numbers in some runs, text in others."""
    keyed = [{"key": _order(sort_value(r, column)), "run": r} for r in runs]
    return [k["run"] for k in sort_by(keyed, "key", descending)]


def _order(value: Any) -> Any:
    return None if value is None else (isinstance(value, str), value)


class Reversed:
    """A value that sorts the other way round."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Reversed) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reversed) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def order_key(run: LiveRun, sort: Sort | None) -> tuple[Any, ...]:
    """Where ``run`` goes in the table, as a key that sorts ascending: the order of
    ``sorted_runs`` over the newest-first runs (ties and runs without a value newest
    first), made unique by the run's id."""
    age = Reversed(newest(run))
    if sort is None:
        return (age,)
    column, descending = sort
    value = _order(sort_value(run, column))
    if value is None:
        return (1, age)
    return (0, Reversed(value) if descending else value, age)


class ShownRuns:
    """The runs the table shows, in its order (``keys``), with their cells; worked out
    in the refresh thread, handed to the table as copies."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.keys: list[str] = []  # the names shown, in order
        self._rows: list[LiveRun] = []  # their rows as placed, in the same order
        self._placed: dict[str, LiveRun] = {}  # the same, by name
        self._made: dict[str, tuple[LiveRun, bool, Cells]] = {}  # cells, the row and mark they show
        self._texts: dict[str, str] = {}  # one string for each text that repeats
        self._repeats = [i for i, column in enumerate(columns) if column not in UNIQUE_COLUMNS]
        self._counts: list[Counter[int]] = [Counter() for _ in columns]  # widths of the shown cells
        self.marked: frozenset[str] = frozenset()  # the marks the cells show
        self.sort: Sort | None = None
        self.keep: Callable[[LiveRun], bool] | None = None

    def cells(self, name: str) -> Cells:
        return self._made[name][2]

    def rebuild(
        self,
        live: LiveRuns,
        sort: Sort | None,
        keep: Callable[[LiveRun], bool] | None,
        marked: frozenset[str],
    ) -> dict[str, Cells]:
        """Every run of ``live`` that ``keep`` keeps, in ``sort``'s order; the cells of each."""
        runs = sorted(live.all(), key=newest, reverse=True)
        if keep is not None:
            runs = [run for run in runs if keep(run)]
        if sort is not None:
            runs = sorted_runs(runs, *sort)
        self.sort, self.keep, self.marked = sort, keep, marked
        self._rows = runs
        self.keys = [run["instance"] for run in runs]
        self._placed = dict(zip(self.keys, runs, strict=True))
        if len(self._made) > len(live):
            for name in [name for name in self._made if live.get(name) is None]:
                del self._made[name]
        shown = {name: self._cells(run, name in marked) for name, run in self._placed.items()}
        self._counts = [Counter(map(len, column)) for column in zip(*shown.values(), strict=True)]
        self._counts += [Counter() for _ in range(len(self.columns) - len(self._counts))]
        return shown

    def update(self, live: LiveRuns, marked: frozenset[str]) -> tuple[dict[str, Cells], set[str], bool]:
        """Take in the last refresh of ``live``, the runs whose clock-bound cells
        (ETA) moved and the marks that changed: the cells of the rows that changed,
        the names that left the table and whether the order changed."""
        todo: dict[str, LiveRun | None] = {}  # each run's row now (None: gone)
        for old, new in live.changes:
            todo[(new or old)["instance"]] = new  # type: ignore[index]
        for run in [*live.active, *filter(None, map(live.get, marked ^ self.marked))]:
            todo.setdefault(run["instance"], run)
        self.marked = marked
        changed: dict[str, Cells] = {}
        gone: set[str] = set()
        moved = False
        # All leave first, then all take their places: the rows in the order while a
        # place is looked for are the rows as they were placed.
        left = {name: self._remove(name) for name in todo if name in self._placed}
        for name, new in todo.items():
            if new is not None and (self.keep is None or self.keep(new)):
                cells = self._cells(new, name in marked)
                moved |= self._place(new, cells) != left.get(name)
                changed[name] = cells
            elif name in left:
                moved = True
                gone.add(name)
            if new is None:
                self._made.pop(name, None)
        return changed, gone, moved

    def widths(self, labels: list[str]) -> list[int]:
        """Each column's width: its label's or its widest shown cell's."""
        return [
            max(len(label), max(counts, default=0))
            for label, counts in zip(labels, self._counts, strict=True)
        ]

    def _cells(self, run: LiveRun, marked: bool) -> Cells:
        """The cells of ``run``, worked out again only when its row or mark changed (or it
        runs: its ETA moves with the clock)."""
        made = self._made.get(run["instance"])
        if made and made[0] is run and made[1] == marked and run["status"] != "running":
            return made[2]
        texts = row_cells(run, self.columns, marked)
        for i in self._repeats:  # 100,000 runs need one "20/20", not 100,000
            texts[i] = self._texts.setdefault(texts[i], texts[i])
        cells = tuple(texts)  # smaller than the list
        self._made[run["instance"]] = (run, marked, cells)
        return cells

    def _key(self, run: LiveRun) -> tuple[Any, ...]:
        return order_key(run, self.sort)

    def _remove(self, name: str) -> int:
        """Take run ``name`` out of the order; where it was."""
        run = self._placed.pop(name)
        at = bisect.bisect_left(self._rows, self._key(run), key=self._key)
        if at >= len(self.keys) or self.keys[at] != name:  # the clock moved it (ETA) or a NaN
            at = self.keys.index(name)
        del self.keys[at], self._rows[at]
        self._count(self._made[name][2], -1)
        return at

    def _place(self, run: LiveRun, cells: Cells) -> int:
        """Put ``run`` in its place in the order; where that is."""
        at = bisect.bisect_left(self._rows, self._key(run), key=self._key)
        self.keys.insert(at, run["instance"])
        self._rows.insert(at, run)
        self._placed[run["instance"]] = run
        self._count(cells, 1)
        return at

    def _count(self, cells: Cells, sign: int) -> None:
        for counts, text in zip(self._counts, cells, strict=True):
            counts[len(text)] += sign
            if not counts[len(text)]:
                del counts[len(text)]
