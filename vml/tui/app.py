"""``ml dashboard``: a full-screen view of a project's runs, refreshed live.

The app only renders: runs are read through ``vml.api`` in a thread worker every
second, and actions (cancel) call the API in a worker too, so the screen never waits
on the store or a process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, RichLog, Static

from vml import api
from vml.errors import VmlError
from vml.run import percent_done

REFRESH_SECONDS = 1.0
BAR_WIDTH = 10
COLUMNS = (
    ("instance", "instance"),
    ("model", "model"),
    ("status", "status"),
    ("progress", "progress"),
    ("epoch", "epoch"),
    ("batch", "batch"),
    ("test_acc", "test_acc"),
    ("test_loss", "test_loss"),
    ("training_start", "training start"),
)


def progress_cell(run: dict[str, Any]) -> str:
    """A text bar and percentage for a run's progress: ``█████░░░░░  50%``."""
    percent = percent_done(run["status"], run["epoch"], run["epochs"], run["batch"], run["batches"])
    filled = round(BAR_WIDTH * percent / 100)
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {percent:5.1f}%"


def cells(run: dict[str, Any], marked: bool = False) -> list[str]:
    """The table row of a run, in ``COLUMNS`` order (a marked run's name with a dot)."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    start = run["training_start"]
    return [
        f"● {run['instance']}" if marked else run["instance"],
        run["model"],
        run["status"],
        progress_cell(run),
        f"{run['epoch'] or 0}/{run['epochs'] or '-'}",
        f"{run['batch'] or 0}/{run['batches'] or '-'}",
        number(run["test_acc"]),
        number(run["test_loss"]),
        datetime.fromisoformat(start).astimezone().strftime("%Y-%m-%d %H:%M") if start else "-",
    ]


class ConfirmDelete(ModalScreen[bool]):
    """Deleting cannot be undone: the user types the run's name; ``escape`` aborts."""

    BINDINGS = [Binding("escape", "abort", "Keep it")]
    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Grid { width: 70; height: 7; border: thick $error; background: $surface; padding: 0 1; }
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.run_name = name

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"Delete {self.run_name} and its folder? Type its name and press enter.")
            yield Input(placeholder=self.run_name, id="typed")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # not the dashboard's filter
        self.dismiss(event.value.strip() == self.run_name)

    def action_abort(self) -> None:
        self.dismiss(False)


class ConfirmCancel(ModalScreen[bool]):
    """``y`` confirms, ``n`` or ``escape`` aborts."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmCancel { align: center middle; }
    ConfirmCancel > Grid { width: 60; height: 5; border: thick $warning; background: $surface; padding: 0 1; }
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"Cancel {', '.join(self.names)}? (y/n)")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


EPOCH_KEYS = ("loss", "acc", "val_loss", "val_acc")
FACT_KEYS = (
    "instance",
    "status",
    "model",
    "epoch",
    "epochs",
    "best_epoch",
    "best_metric",
    "monitor",
    "test_acc",
    "test_loss",
    "checkpoint",
    "training_start",
    "training_end",
    "pid",
    "host",
    "error",
)
LOG_TAIL_LINES = 200


class RunScreen(Screen):
    """One run: its record and hyperparameters, per-epoch metrics, and its log's tail,
    refreshed every second while it is open."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]
    DEFAULT_CSS = """
    RunScreen #facts { width: 48; }
    RunScreen #right { width: 1fr; }
    RunScreen #epochs { height: 1fr; }
    RunScreen #log { height: 1fr; border-top: solid $primary; }
    """

    def __init__(self, project: api.Project, name: str) -> None:
        super().__init__()
        self.project = project
        self.run_name = name
        self._log_lines = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with VerticalScroll(id="facts"):
                yield Static("", id="record")
            with VerticalScroll(id="right"):
                table: DataTable = DataTable(id="epochs", cursor_type="none")
                table.add_column("epoch", key="epoch")
                for key in EPOCH_KEYS:
                    table.add_column(key, key=key)
                yield table
                yield RichLog(id="log", max_lines=LOG_TAIL_LINES, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_name
        self._load()
        self.set_interval(REFRESH_SECONDS, self._load)

    @work(thread=True, exclusive=True, group="run")
    def _load(self) -> None:
        run = self.project.run(f"@{self.run_name}")
        info, points, log = run.info(), run.metrics(), run.logs()
        self.app.call_from_thread(self._show, info, points, log)

    def _show(self, info: dict[str, Any], points: list[dict[str, Any]], log: str) -> None:
        facts = [f"{key}: {'-' if info[key] is None else info[key]}" for key in FACT_KEYS]
        facts += ["", "hyperparameters:"]
        facts += [f"  {key}: {value}" for key, value in sorted(info["hyperparameters"].items())]
        self.query_one("#record", Static).update("\n".join(facts))
        epochs: dict[int, dict[str, float]] = {}
        for point in points:
            if point["key"] in EPOCH_KEYS:
                epochs.setdefault(point["epoch"], {})[point["key"]] = point["value"]
        table = self.query_one("#epochs", DataTable)
        for epoch in sorted(epochs)[table.row_count :]:
            values = epochs[epoch]
            table.add_row(str(epoch), *(f"{values[k]:.4f}" if k in values else "-" for k in EPOCH_KEYS))
        lines = log.splitlines()
        widget = self.query_one("#log", RichLog)
        for line in lines[self._log_lines :]:
            widget.write(line)
        self._log_lines = len(lines)


COMPARED_RESULTS = ("status", "epoch", "best_epoch", "best_metric", "test_acc", "test_loss")


def compare_rows(runs: list[dict[str, Any]]) -> list[tuple[str, list[str], bool]]:
    """``(field, values per run, differs)`` for the results and every hyperparameter
    of ``runs``; hyperparameters that differ come first."""

    def text(value: Any, digits: str = "g") -> str:
        return "-" if value is None else format(value, digits) if isinstance(value, float) else str(value)

    rows = []
    for key in COMPARED_RESULTS:
        values = [text(run[key], ".4f") for run in runs]
        rows.append((key, values, len(set(values)) > 1))
    params = sorted({key for run in runs for key in run["hyperparameters"]})
    hyper = []
    for key in params:
        values = [text(run["hyperparameters"].get(key)) for run in runs]
        hyper.append((key, values, len(set(values)) > 1))
    hyper.sort(key=lambda row: not row[2])  # stable: differing first, each group by name
    return rows + hyper


class CompareScreen(Screen):
    """Marked runs side by side: results, then hyperparameters (differing ones first,
    marked with *)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable = DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        table.add_column("", key="differs")
        table.add_column("field", key="field")
        for run in self.runs:
            table.add_column(run["instance"], key=run["instance"])
        for field, values, differs in compare_rows(self.runs):
            table.add_row("*" if differs else "", field, *values, key=field)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(run["instance"] for run in self.runs)


class Dashboard(App):
    """The runs of one project in a live table."""

    TITLE = "vml dashboard"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("enter", "open_run", "Open run"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort", "Sort"),
        Binding("x", "cancel_runs", "Cancel run"),
        Binding("d", "delete_run", "Delete"),
        Binding("question_mark", "show_help_panel", "Keys"),
        Binding("p", "pause", "Pause"),
        Binding("r", "refresh", "Refresh"),
    ]
    DEFAULT_CSS = """
    #filter { dock: bottom; display: none; }
    #filter.shown { display: block; }
    #empty { padding: 1 2; }
    """

    def __init__(self, project: api.Project) -> None:
        super().__init__()
        self.project = project
        self.paused = False
        self.where: str | None = None
        self.sort_index = -1  # newest first until a column is picked
        self.runs: list[dict[str, Any]] = []
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="empty")
        table: DataTable = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Input(
            placeholder="filter: text, a status, or test_acc>0.9 (enter applies, escape clears)", id="filter"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.project.root)
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if not self.paused:
            self.action_refresh()

    def action_refresh(self) -> None:
        self._load(self.where)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, where: str | None) -> None:
        try:
            runs, problem = self._read(where), None
        except VmlError as exc:
            runs, problem = None, exc.message
        self.call_from_thread(self._show, runs, problem)

    def _read(self, where: str | None) -> list[dict[str, Any]]:
        runs = self.project.list_runs()
        if not where:
            return runs
        if any(op in where for op in "<>=") or " -" in where:
            return self.project.list_runs(where=where)
        needle = where.lower()
        return [
            r
            for r in runs
            if needle in r["instance"].lower() or needle in r["status"] or needle in r["model"]
        ]

    def _show(self, runs: list[dict[str, Any]] | None, problem: str | None) -> None:
        if problem is not None:
            self.notify(problem, severity="error")
            return
        assert runs is not None
        if 0 <= self.sort_index < len(COLUMNS):
            key = COLUMNS[self.sort_index][0]
            runs = sorted(
                runs, key=lambda r: (api.run_value(r, key) is None, str(api.run_value(r, key) or ""))
            )
        self.runs = runs
        table = self.query_one("#runs", DataTable)
        wanted = [r["instance"] for r in runs]
        present = [str(key.value) for key in table.rows]
        if present != wanted:
            # Rebuilt only when the set or order of runs changed; the cursor stays on its run.
            selected = present[table.cursor_row] if present and 0 <= table.cursor_row < len(present) else None
            table.clear()
            for run in runs:
                table.add_row(*cells(run, run["instance"] in self.marked), key=run["instance"])
            if selected in wanted:
                table.move_cursor(row=wanted.index(selected))
        else:
            for run in runs:
                for (key, _), value in zip(COLUMNS, cells(run, run["instance"] in self.marked), strict=True):
                    if table.get_cell(run["instance"], key) != value:
                        table.update_cell(run["instance"], key, value)
        empty = self.query_one("#empty", Static)
        if runs:
            empty.update("")
            empty.display = False
        else:
            empty.display = True
            empty.update(
                "No runs match the filter."
                if self.where
                else "No runs yet. Start one with: ml train --detach"
            )

    def selected_run(self) -> dict[str, Any] | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def action_mark(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        name = run["instance"]
        self.marked.symmetric_difference_update({name})
        table = self.query_one("#runs", DataTable)
        table.update_cell(name, "instance", cells(run, name in self.marked)[0])
        table.action_cursor_down()

    def action_compare(self) -> None:
        runs = [run for run in self.runs if run["instance"] in self.marked] or self.runs[:2]
        if len(runs) < 2:
            self.notify("mark two or more runs with space to compare them", severity="warning")
            return
        self.push_screen(CompareScreen(runs))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_open_run()

    def action_open_run(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.push_screen(RunScreen(self.project, run["instance"]))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        self.where = event.value.strip() or None
        event.input.remove_class("shown")
        self.query_one("#runs", DataTable).focus()
        self.action_refresh()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.where = None
        self.query_one("#runs", DataTable).focus()
        self.action_refresh()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 2) % (len(COLUMNS) + 1) - 1
        label = COLUMNS[self.sort_index][1] if self.sort_index >= 0 else "newest first"
        self.notify(f"sorted by {label}")
        self.action_refresh()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.sub_title = f"{self.project.root}{' (paused)' if self.paused else ''}"

    def action_cancel_runs(self) -> None:
        run = self.selected_run()
        if run is None or run["status"] not in api.ACTIVE_STATES:
            self.notify("select a queued or running run to cancel", severity="warning")
            return
        name = run["instance"]

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(name)

        self.push_screen(ConfirmCancel([name]), answered)

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

        self.push_screen(ConfirmDelete(name), answered)

    @work(thread=True)
    def _delete(self, name: str) -> None:
        self.project.delete(f"@{name}")
        self.marked.discard(name)
        self.call_from_thread(self.notify, f"deleted {name}")
        self.call_from_thread(self.action_refresh)

    @work(thread=True)
    def _cancel(self, name: str) -> None:
        status = self.project.run(f"@{name}").cancel()
        self.call_from_thread(self.notify, f"{name}: {status}")
        self.call_from_thread(self.action_refresh)
