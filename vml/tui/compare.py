"""The compare screen: runs side by side (results, then hyperparameters, differing
ones first) and one chart per metric with a line per run."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from vml.live import MetricHistories
from vml.tui.charts import Chart, epoch_series, per_step_keys
from vml.views import compare_rows, compared_text, final_values

DIFFERS = "bold yellow"


class CompareScreen(Screen):
    """Marked runs side by side, with their metric curves overlaid."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]
    DEFAULT_CSS = """
    CompareScreen #compare { width: auto; max-width: 65%; }
    CompareScreen #curves { width: 1fr; min-width: 30; }
    """

    def __init__(self, runs: list[dict[str, Any]], histories: MetricHistories) -> None:
        super().__init__()
        self.runs = runs
        self.histories = histories

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            table: DataTable = DataTable(id="compare", cursor_type="row", zebra_stripes=True)
            table.add_column("", key="differs")
            table.add_column("field", key="field")
            for run in self.runs:
                table.add_column(run["instance"], key=run["instance"])
            yield table
            yield VerticalScroll(id="curves")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(run["instance"] for run in self.runs)
        self._fill([])
        self._load()

    def _fill(self, finals: list[dict[str, float]]) -> None:
        table = self.query_one("#compare", DataTable)
        table.clear()
        for field, values, differs in compare_rows(self.runs, finals):
            cells = [compared_text(value, field) for value in values]
            if differs:
                table.add_row(
                    "*", Text(field, style=DIFFERS), *(Text(c, style=DIFFERS) for c in cells), key=field
                )
            else:
                table.add_row("", field, *cells, key=field)

    @work(thread=True, exclusive=True, group="compare")
    def _load(self) -> None:
        histories = [self.histories.points(run) for run in self.runs]
        self.app.call_from_thread(self._show, histories)

    def _show(self, histories: list[list[dict[str, Any]]]) -> None:
        self._fill([final_values(points) for points in histories])
        stepwise = set().union(*(per_step_keys(points) for points in histories))
        keys = list(
            dict.fromkeys(p["key"] for points in histories for p in points if p["key"] not in stepwise)
        )
        charts = [Chart() for _ in keys]
        self.query_one("#curves", VerticalScroll).mount_all(charts)
        for chart, key in zip(charts, keys, strict=True):
            lines = {
                run["instance"]: epoch_series(points, key)
                for run, points in zip(self.runs, histories, strict=True)
            }
            chart.show(key, "epoch", lines)
