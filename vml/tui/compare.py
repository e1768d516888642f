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

COMPARED_RESULTS = ("status", "epoch", "best_epoch", "best_metric", "test_acc", "test_loss")
FINAL_METRICS = ("loss", "acc", "val_loss", "val_acc")
DIFFERS = "bold yellow"


def compare_rows(
    runs: list[dict[str, Any]], finals: list[dict[str, float]] | None = None
) -> list[tuple[str, list[str], bool]]:
    """``(field, values per run, differs)``: the results, each run's last value of
    the epoch metrics (``finals``), then every hyperparameter, those that differ first."""

    def text(value: Any, digits: str = "g") -> str:
        return "-" if value is None else format(value, digits) if isinstance(value, float) else str(value)

    rows = []
    for key in COMPARED_RESULTS:
        values = [text(run[key], ".4f") for run in runs]
        rows.append((key, values, len(set(values)) > 1))
    for key in FINAL_METRICS if finals else ():
        values = [text(final.get(key), ".4f") for final in finals]
        rows.append((f"final {key}", values, len(set(values)) > 1))
    params = sorted({key for run in runs for key in run["hyperparameters"]})
    hyper = []
    for key in params:
        values = [text(run["hyperparameters"].get(key)) for run in runs]
        hyper.append((key, values, len(set(values)) > 1))
    hyper.sort(key=lambda row: not row[2])  # stable: differing first, each group by name
    return rows + hyper


def final_values(points: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of each epoch metric."""
    return {p["key"]: p["value"] for p in points if p["key"] in FINAL_METRICS}


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
            if differs:
                table.add_row(
                    "*", Text(field, style=DIFFERS), *(Text(v, style=DIFFERS) for v in values), key=field
                )
            else:
                table.add_row("", field, *values, key=field)

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
