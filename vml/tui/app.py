"""``ml dashboard``: a full-screen view of a project's runs, refreshed live.

The app only renders and asks ``vml.api``: runs are read in a thread worker every
second (only what changed, see ``vml.live``), the table's rows are kept in order and
their cells worked out there too (only those that changed, see ``vml.tui.rows``), and
actions (start, cancel, delete) run in workers, so the screen never waits on the store
or a process. Runs started here are detached workers: quitting leaves them running.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, NamedTuple

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from vml import api
from vml.errors import VmlError
from vml.live import LiveRun, LiveRuns, MetricHistories, newest
from vml.query import parse_conditions
from vml.tui.compare import CompareScreen
from vml.tui.dialogs import ConfirmCancel, ConfirmDelete
from vml.tui.new_run import NewRunScreen
from vml.tui.rows import ShownRuns, row_cells
from vml.tui.run_screen import RunScreen
from vml.tui.study_screen import StudyScreen
from vml.tui.table import RunTable, column_widths
from vml.views import public_run, run_value

REFRESH_SECONDS = 1.0
FIRST_ROWS = 200  # more than a screen holds
FIRST_PAINT_WAIT_S = 1.0
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


def text_matches(run: dict[str, Any], needle: str) -> bool:
    """Whether ``needle`` (lower case) is in the run's name, state or model."""
    return needle in run["instance"].lower() or needle in run["status"] or needle in run["model"].lower()


def is_condition(text: str) -> bool:
    """Whether a filter is a ``--where`` condition rather than text to look for."""
    return any(op in text for op in "<>=") or " -" in text


class View(NamedTuple):
    """What the table shows: the filter (as a test of one run, and the columns it
    reads), the sort, and a number that moves on at each change of them."""

    number: int = 0
    keep: Callable[[LiveRun], bool] | None = None
    columns: frozenset[str] = frozenset()
    sort: tuple[str, bool] | None = None


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
        self.columns = dashboard_columns(project.list_columns(), sweeps=bool(project.sweep_ids()))
        self.labels = [LABELS.get(c, c) for c in self.columns]
        self.live = LiveRuns(project, [c for c in self.columns if c not in LIVE_COLUMNS])
        self.shown = ShownRuns(self.columns)
        self.paused = False
        self.where: str | None = None
        # Set here, read by the refresh thread: one object, so it never sees half a change.
        self._view = View()
        self._placed = -1  # the number of the view the rows were last placed for
        self.sort_index = -1  # newest first until a column is picked
        self.descending = False
        self.marked: set[str] = set()
        self.studied = False  # whether any run is a trial of ml tune: the t key shows then
        self._reading = threading.Lock()  # one refresh at a time, however slow the disk
        self._loaded = False  # every run read (until then the newest screenful stands in)
        self._first: dict[str, dict[str, Any]] = {}  # the newest screenful, by name
        self._first_count = 0

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
                if not self._loaded and not self._first:
                    # Reading 100,000 runs takes a while: the newest screenful comes first.
                    newest_runs = self.project.list_runs(limit=FIRST_ROWS)
                    self._first = {run["instance"]: run for run in newest_runs}
                    self._first_count = self.project.count_records()
                    rows = [row_cells(run, self.columns) for run in newest_runs]
                    widths = column_widths(self.labels, rows)
                    painted = threading.Event()
                    self.app.call_from_thread(self._show_first, list(self._first), rows, widths, painted)
                    # Reading every run holds the interpreter for seconds at 100,000 runs:
                    # it starts once the first screen is on the terminal (0.3-0.6 s from
                    # Dashboard() on a loaded 2-core machine, 0.9-1.2 s when both ran at once).
                    painted.wait(FIRST_PAINT_WAIT_S)
                view = self._view
                self.live.hold(view.columns)
                changed = self.live.refresh()
            except VmlError as exc:
                self.app.call_from_thread(self.notify, exc.message, severity="error")
                return
            marked = frozenset(self.marked)
            if view.number != self._placed or self.live.reset or not self._loaded:
                self._placed = view.number
                cells = self.shown.rebuild(self.live, view.sort, view.keep, marked)
                keys, gone, replace = list(self.shown.keys), (), True
            elif changed or self.live.active or marked != self.shown.marked:
                cells, gone, moved = self.shown.update(self.live, marked)
                keys, replace = list(self.shown.keys) if moved else None, False
            else:
                return  # nothing changed: nothing to show
            widths = self.shown.widths(self.labels)
            read_all = self.live.reset or not self._loaded
            self._loaded = True
        if read_all:
            # The runs just read live as long as the app: keep them out of the
            # collector, whose full passes over 10,000 runs' objects took up to
            # 120 ms, long enough to drop a keystroke's frame.
            gc.freeze()
        self.app.call_from_thread(self._show, keys, cells, widths, gone, replace)

    def _show_first(
        self, keys: list[str], rows: list[list[str]], widths: list[int], painted: threading.Event
    ) -> None:
        if not self._loaded and self.query("#runs"):  # none while the app closes
            self.table.set_rows(keys, rows, widths)
            self._shown_state()
        self.call_after_refresh(painted.set)

    def _show(
        self,
        keys: list[str] | None,
        cells: dict[str, Sequence[str]],
        widths: list[int],
        gone: Iterable[str],
        replace: bool,
    ) -> None:
        if not self.query("#runs"):  # the app is closing
            return
        self.table.change(keys, cells, widths, gone, replace)
        self.marked.difference_update(name for name in gone if self.live.get(name) is None)
        self._shown_state()

    def _shown_state(self) -> None:
        """The title, the study key and the empty state, as the table now stands."""
        trials = (
            bool(self.live.trials)
            if self._loaded
            else any(r["trial"] is not None for r in self._first.values())
        )
        if trials != self.studied:
            self.studied = trials
            self.refresh_bindings()
        self._title()
        empty = self.query_one("#empty", Static)
        empty.display = not self.table.row_count
        if not self.table.row_count:
            empty.update(
                "No runs match the filter (escape clears it)."
                if self.where
                else "No runs yet. Press n to start one, or run: ml train --detach"
            )

    def _title(self) -> None:
        # Until every run is read, the newest screenful and the stored count stand in.
        if self._loaded:
            total, states = len(self.live), self.live.states
        else:
            total, states = self._first_count, Counter(r["status"] for r in self._first.values())
        parts = [self.project.root.name, f"{total} runs", f"{states['running']} running"]
        if states["queued"]:
            parts.append(f"{states['queued']} queued")
        if self.where:
            parts.append(f"filter: {self.where}")
        if self.paused:
            parts.append("paused")
        self.sub_title = " · ".join(parts)

    def run_named(self, name: str) -> dict[str, Any] | None:
        """Run ``name`` as the table shows it (its light row)."""
        return self.live.get(name) or (None if self._loaded else self._first.get(name))

    def selected_run(self) -> dict[str, Any] | None:
        key = self.table.cursor_key
        return self.run_named(key) if key else None

    def action_mark(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        self.marked.symmetric_difference_update({run["instance"]})
        self.table.update_row(
            self.table.cursor_row, row_cells(run, self.columns, run["instance"] in self.marked)
        )
        self.table.action_move(1)

    def _marked_names(self) -> list[str]:
        """The marked runs' names in the table's order."""
        return [name for name in self.table.keys if name in self.marked] if self.marked else []

    def action_compare(self) -> None:
        names = self._marked_names() or self.table.keys[:2]
        if len(names) < 2:
            self.notify("mark two or more runs with space to compare them", severity="warning")
            return
        try:  # whole records: the table holds light rows
            runs = [public_run(self.project.find_run(f"@{name}")) for name in names]
        except VmlError as exc:  # deleted meanwhile
            self.notify(exc.message, severity="error")
            return
        self.app.push_screen(CompareScreen(runs, self.histories))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.studied if action == "open_study" else True

    def action_open_study(self) -> None:
        """The selected trial's study; on another run, the study of the latest trial."""
        run = self.selected_run()
        if run is None or run["trial"] is None:
            if self._loaded:
                run = max((r for r in self.live.all() if r["trial"] is not None), key=newest, default=None)
            else:  # newest first
                run = next((r for r in self._first.values() if r["trial"] is not None), None)
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
        event.input.remove_class("shown")
        self.set_focus(self.table)
        where = event.value.strip() or None
        try:
            keep, columns = self._filter(where)
        except VmlError as exc:  # an unknown column, a malformed condition
            self.notify(exc.message, severity="error")
            return
        self.where = where
        self._title()
        self._change_view(keep=keep, columns=columns)

    def _filter(self, where: str | None) -> tuple[Callable[[LiveRun], bool] | None, frozenset[str]]:
        """The filter ``where`` as a test of one run, and the columns it reads."""
        if not where:
            return None, frozenset()
        if not is_condition(where):
            needle = where.lower()
            return (lambda run: text_matches(run, needle)), frozenset()
        conditions = parse_conditions([where], self.project.known_columns())
        keep = lambda run: all(c.matches(run_value(run, c.column)) for c in conditions)  # noqa: E731
        return keep, frozenset(c.column for c in conditions)

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.where = None
        self.set_focus(self.table)
        self._title()
        self._change_view(keep=None, columns=frozenset())

    def _change_view(self, **changes: Any) -> None:
        """Show the rows another way (filter, sort): all are placed again on the next read."""
        self._view = self._view._replace(number=self._view.number + 1, **changes)
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
        sort = (self.columns[self.sort_index], self.descending) if self.sort_index >= 0 else None
        self._change_view(sort=sort)

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
        marked = [
            name
            for name in self._marked_names()
            if (run := self.run_named(name)) is not None and run["status"] in api.ACTIVE_STATES
        ]
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
