"""``ml dashboard``: a full-screen view of a project's runs, refreshed live.

The app only renders and asks ``vml.api``: runs are read in a thread worker every
second (only what changed, see ``vml.live``), the table's cells are worked out there
too, and actions (start, cancel, delete) run in workers, so the screen never waits on
the store or a process. Runs started here are detached workers: quitting leaves them
running.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from vml import api
from vml.errors import VmlError
from vml.live import LiveRuns, MetricHistories
from vml.tui.compare import CompareScreen
from vml.tui.dialogs import ConfirmCancel, ConfirmDelete
from vml.tui.new_run import NewRunScreen
from vml.tui.run_screen import RunScreen
from vml.tui.study_screen import StudyScreen
from vml.tui.table import RunTable, column_widths
from vml.views import cell, duration, eta_seconds, percent_done, run_value, sort_by

REFRESH_SECONDS = 1.0
FIRST_ROWS = 200  # more than a screen holds
BAR_WIDTH = 10
LIVE_COLUMNS = ("progress", "eta")  # shown after status, not ml list columns
LABELS = {"eta": "ETA", "training_start": "training start", "training_end": "training end"}


def dashboard_columns(list_columns: Iterable[str], sweeps: bool = False) -> list[str]:
    """``ml list``'s columns with progress and ETA after the status, and the sweep
    after the name when the project has sweeps (sorting by it groups them)."""
    columns = [c for c in list_columns if c not in (*LIVE_COLUMNS, "sweep")]
    if sweeps:
        columns.insert(1, "sweep")
    at = columns.index("status") + 1 if "status" in columns else len(columns)
    return [*columns[:at], *LIVE_COLUMNS, *columns[at:]]


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


def text_filter(runs: list[dict[str, Any]], needle: str) -> list[dict[str, Any]]:
    needle = needle.lower()
    return [
        r
        for r in runs
        if needle in r["instance"].lower() or needle in r["status"] or needle in r["model"].lower()
    ]


def studied(runs: list[dict[str, Any]]) -> bool:
    """Whether any of ``runs`` is a trial of a study (``ml tune``)."""
    return any(run["trial"] is not None for run in runs)


def is_condition(text: str) -> bool:
    """Whether a filter is a ``--where`` condition rather than text to look for."""
    return any(op in text for op in "<>=") or " -" in text


class RunsScreen(Screen):
    """The runs in a live table: the dashboard's first screen."""

    BINDINGS = [
        Binding("enter", "open_run", "Open"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("t", "open_study", "Study"),
        Binding("n", "new_run", "New run"),
        Binding("x", "cancel_runs", "Cancel"),
        Binding("d", "delete_run", "Delete"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("p", "pause", "Pause"),
        Binding("r", "refresh", "Refresh", show=False),
    ]
    DEFAULT_CSS = """
    #filter { dock: bottom; display: none; }
    #filter.shown { display: block; }
    #empty { padding: 1 2; height: auto; }
    """

    def __init__(self, project: api.Project, histories: MetricHistories) -> None:
        super().__init__()
        self.project = project
        self.histories = histories
        self.live = LiveRuns(project)
        self.columns = dashboard_columns(project.list_columns(), sweeps=bool(project.sweep_ids()))
        self.labels = [LABELS.get(c, c) for c in self.columns]
        self.paused = False
        self.where: str | None = None
        self.sort_index = -1  # newest first until a column is picked
        self.descending = False
        self.runs: list[dict[str, Any]] = []
        self.marked: set[str] = set()
        self.studied = False  # whether any run is a trial of ml tune: the t key shows then
        self._cells: dict[str, tuple[dict[str, Any], bool, list[str]]] = {}
        self._reading = threading.Lock()  # one refresh at a time, however slow the disk
        self._frozen = False
        self._first_count = 0
        self._measured: tuple[list[str], list[int]] = ([], [])  # the keys shown, their column widths

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="empty")
        yield RunTable(self.labels, status_column=self._status_column(), id="runs")
        yield Input(
            placeholder="filter: text, a status, or test_acc>0.9 (enter applies, escape clears)", id="filter"
        )
        yield Footer()

    def _status_column(self) -> int | None:
        return self.columns.index("status") if "status" in self.columns else None

    @property
    def table(self) -> RunTable:
        return self.query_one("#runs", RunTable)

    def on_mount(self) -> None:
        self._title()
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if not self.paused:
            self.action_refresh()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="load")
    def _load(self) -> None:
        with self._reading:
            try:
                if not self.live.runs and not self.where and self.sort_index < 0:
                    # Reading 10,000 runs takes a while: the newest screenful comes first.
                    newest = self.project.list_runs(limit=FIRST_ROWS)
                    self._first_count = self.project.count_records()
                    rows = [self._row(run)[0] for run in newest]
                    self.app.call_from_thread(self._show, newest, rows, column_widths(self.labels, rows))
                self.live.refresh()
                if not self._frozen:
                    # The runs just read live as long as the app: keep them out of the
                    # collector, whose full passes over 10,000 runs' objects took up to
                    # 120 ms, long enough to drop a keystroke's frame.
                    gc.freeze()
                    self._frozen = True
                runs = self._select(self.live.runs)
            except VmlError as exc:
                self.app.call_from_thread(self.notify, exc.message, severity="error")
                return
            rows, changed = [], []
            for run in runs:
                cells, fresh = self._row(run)
                rows.append(cells)
                if fresh:
                    changed.append(cells)
            keys = [run["instance"] for run in runs]
            # Measuring 10,000 rows each second would be most of a refresh: while the
            # same rows are shown, only changed ones can widen a column.
            same = keys == self._measured[0]
            widths = (
                column_widths(self.labels, changed, self._measured[1])
                if same
                else column_widths(self.labels, rows)
            )
            self._measured = (keys, widths)
            trials = studied(self.live.runs)
        if trials != self.studied:
            self.app.call_from_thread(self._show_study_key, trials)
        self.app.call_from_thread(self._show, runs, rows, widths)

    def _select(self, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.where:
            runs = (
                self.project.matching(runs, self.where)
                if is_condition(self.where)
                else text_filter(runs, self.where)
            )
        if self.sort_index >= 0:
            runs = sorted_runs(runs, self.columns[self.sort_index], self.descending)
        return runs

    def _row(self, run: dict[str, Any]) -> tuple[list[str], bool]:
        """A run's cells, and whether they were worked out anew. They are kept while
        the run's dict is the same (LiveRuns makes a new one when it changes); a
        running run's ETA moves with the clock."""
        marked = run["instance"] in self.marked
        cached = self._cells.get(run["instance"])
        if cached and cached[0] is run and cached[1] == marked and run["status"] != "running":
            return cached[2], False
        cells = row_cells(run, self.columns, marked)
        self._cells[run["instance"]] = (run, marked, cells)
        return cells, True

    def _show_study_key(self, trials: bool) -> None:
        self.studied = trials
        self.refresh_bindings()

    def _show(self, runs: list[dict[str, Any]], rows: list[list[str]], widths: list[int]) -> None:
        self.runs = runs
        self.table.set_rows([r["instance"] for r in runs], rows, widths)
        self.marked &= {r["instance"] for r in self.live.runs}
        self._title()
        empty = self.query_one("#empty", Static)
        empty.display = not runs
        if not runs:
            empty.update(
                "No runs match the filter (escape clears it)."
                if self.where
                else "No runs yet. Press n to start one, or run: ml train --detach"
            )

    def _title(self) -> None:
        # Until every run is read, the newest screenful and the stored count stand in.
        runs = self.live.runs or self.runs
        total = len(self.live.runs) if self.live.runs else self._first_count
        running = sum(1 for r in runs if r["status"] == "running")
        queued = sum(1 for r in runs if r["status"] == "queued")
        parts = [self.project.root.name, f"{total} runs", f"{running} running"]
        if queued:
            parts.append(f"{queued} queued")
        if self.where:
            parts.append(f"filter: {self.where}")
        if self.paused:
            parts.append("paused")
        self.sub_title = " · ".join(parts)

    def selected_run(self) -> dict[str, Any] | None:
        key = self.table.cursor_key
        return next((r for r in self.runs if r["instance"] == key), None) if key else None

    def action_mark(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        self.marked.symmetric_difference_update({run["instance"]})
        self.table.update_row(
            self.table.cursor_row, row_cells(run, self.columns, run["instance"] in self.marked)
        )
        self.table.action_move(1)

    def action_compare(self) -> None:
        runs = [run for run in self.runs if run["instance"] in self.marked] or self.runs[:2]
        if len(runs) < 2:
            self.notify("mark two or more runs with space to compare them", severity="warning")
            return
        self.app.push_screen(CompareScreen(runs, self.histories))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.studied if action == "open_study" else True

    def action_open_study(self) -> None:
        """The selected trial's study; on another run, the study of the latest trial."""
        run = self.selected_run()
        if run is None or run["trial"] is None:
            run = next((r for r in self.live.runs or self.runs if r["trial"] is not None), None)
        if run is None:
            self.notify("no study yet: ml tune starts one", severity="warning")
            return
        self.app.push_screen(StudyScreen(self.project, run["sweep"], self.histories))

    def on_run_table_selected(self, event: RunTable.Selected) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.app.push_screen(RunScreen(self.project, run["instance"], self.histories))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        # At once, not on the next message (what focus() does): keys typed right after
        # the slash, already queued, must reach the box.
        self.set_focus(box)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        self.where = event.value.strip() or None
        event.input.remove_class("shown")
        self.set_focus(self.table)
        self.action_refresh()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.where = None
        self.set_focus(self.table)
        self.action_refresh()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 2) % (len(self.columns) + 1) - 1
        self.descending = False
        self._announce_sort()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self._announce_sort()

    def _announce_sort(self) -> None:
        # The sorted column's header carries an arrow; the rows follow on the next read.
        self.labels = [LABELS.get(c, c) for c in self.columns]
        if self.sort_index >= 0:
            self.labels[self.sort_index] += " ▼" if self.descending else " ▲"
        self.table.labels = self.labels
        self.table.refresh()
        self.action_refresh()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._title()

    def action_new_run(self) -> None:
        try:
            form = NewRunScreen(self.project)
        except VmlError as exc:  # vergeml.yaml broke meanwhile
            self.notify(exc.message, severity="error")
            return

        def started(name: str | None) -> None:
            if name:
                self.notify(f"started {name}")
                self.action_refresh()

        self.app.push_screen(form, started)

    def action_cancel_runs(self) -> None:
        live = [r for r in self.runs if r["status"] in api.ACTIVE_STATES]
        marked = [r["instance"] for r in live if r["instance"] in self.marked]
        run = self.selected_run()
        names = marked or ([run["instance"]] if run and run["status"] in api.ACTIVE_STATES else [])
        if not names:
            self.notify("select (or mark) a queued or running run to cancel", severity="warning")
            return
        self.app.cancel_runs(names)

    def action_delete_run(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        name = run["instance"]
        if run["status"] in api.ACTIVE_STATES:
            self.notify(f"{name} is {run['status']}: cancel it first (x)", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(name)
            else:
                self.notify(f"kept {name}")

        self.app.push_screen(ConfirmDelete(name), answered)

    @work(thread=True)
    def _delete(self, name: str) -> None:
        try:
            self.project.delete(f"@{name}")
        except VmlError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.app.call_from_thread(self.notify, f"deleted {name}")
        self.app.call_from_thread(self.action_refresh)


class Dashboard(App):
    """The runs of one project: watch, compare, start, cancel and delete them."""

    TITLE = "vml dashboard"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "show_help_panel", "Keys"),
    ]

    def __init__(self, project: api.Project) -> None:
        super().__init__()
        self.project = project
        self.histories = MetricHistories(project)

    def get_default_screen(self) -> Screen:
        return RunsScreen(self.project, self.histories)

    def action_show_help_panel(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            super().action_show_help_panel()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette (ctrl+p) offers what the screen's keys do."""
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.description and not binding.action.startswith("app."):
                key = binding.key.split(",")[0]
                yield SystemCommand(
                    binding.description, f"key: {key}", partial(screen.run_action, binding.action)
                )

    def cancel_runs(self, names: list[str]) -> None:
        """Ask, then cancel the runs ``names``; their rows turn ``cancelled`` live."""

        def answered(yes: bool | None) -> None:
            if yes:
                for name in names:
                    self._cancel(name)

        self.push_screen(ConfirmCancel(names), answered)

    @work(thread=True)
    def _cancel(self, name: str) -> None:
        try:
            status = self.project.run(f"@{name}").cancel()
        except VmlError as exc:
            self.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.call_from_thread(self.notify, f"{name}: {status}")
