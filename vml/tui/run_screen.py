"""The run screen: one run's record, process use, metric charts, epochs and log tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, RichLog, Static, TabbedContent, TabPane

from vml import api
from vml.errors import VmlError
from vml.live import MetricHistories, metric_names
from vml.tui.charts import Chart, chart_groups, epoch_series, latest_epoch_series, per_step_keys
from vml.tui.evaluation import EvaluationView
from vml.views import (
    EPOCH_METRICS,
    TEST_METRICS,
    duration,
    epoch_table,
    eta_seconds,
    local_time,
    percent_done,
)

REFRESH_SECONDS = 1.0
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 64 * 1024


def record_text(info: dict[str, Any], root: Path) -> str:
    """The left panel: what the run is, how far it got, its best checkpoint (relative
    to the project ``root``), what its process uses and its hyperparameters."""

    def value(key: str) -> str:
        found = info.get(key)
        if found is None:
            return "-"
        if key in ("training_start", "training_end"):
            return local_time(found)
        if key == "checkpoint":
            return str(Path(found).relative_to(root))
        return f"{found:.4f}" if isinstance(found, float) else str(found)

    done = percent_done(info)
    eta = eta_seconds(info)
    lines = [
        f"status: {info['status']}",
        f"model: {info['model']}",
        f"progress: {done:.1f}%" + (f", ETA {duration(eta)}" if eta is not None else ""),
        f"epoch: {info['epoch'] or 0}/{value('epochs')}  batch: {info['batch'] or 0}/{value('batches')}",
        f"best: epoch {value('best_epoch')}, {info['monitor'] or 'val'} {value('best_metric')}",
        f"checkpoint: {value('checkpoint')}",
        *_test_lines(info),
        f"started: {value('training_start')}",
        f"ended: {value('training_end')}",
    ]
    if info["status"] in api.ACTIVE_STATES:
        lines.append(f"process: {value('pid')} on {value('host')}")
        lines += resource_lines(info.get("resources") or {})
    if info["error"]:
        lines.append(f"error: {info['error']}")
    lines += ["", "hyperparameters:"]
    lines += [f"  {key}: {v}" for key, v in sorted(info["hyperparameters"].items())]
    return "\n".join(lines)


def _test_lines(info: dict[str, Any]) -> list[str]:
    """The test split's scores, two to a line: those of a classification or of a
    regression, whichever the run has."""
    shown = [key for key in TEST_METRICS if info.get(key) is not None] or ["test_acc", "test_loss"]
    cells = [f"{key}: {info[key]:.4f}" if info.get(key) is not None else f"{key}: -" for key in shown]
    return ["  ".join(cells[i : i + 2]) for i in range(0, len(cells), 2)]


def resource_lines(usage: dict[str, Any]) -> list[str]:
    """CPU, memory and GPU use as the worker's heartbeat last recorded them."""
    if not usage:
        return ["cpu/memory: not reported yet"]
    lines = [f"cpu: {usage['cpu_percent']:.0f}%  memory: {usage['rss_mb']:.0f} MiB"]
    if "gpu" in usage:
        busy = f"{usage['gpu_percent']}% busy, " if "gpu_percent" in usage else ""
        lines.append(
            f"gpu: {busy}{usage['gpu_memory_mb']:.0f}/{usage['gpu_total_mb']:.0f} MiB ({usage['gpu']})"
        )
    return lines


class RunScreen(Screen):
    """One run, refreshed every second while it is open."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
        Binding("slash", "filter_metrics", "Filter metrics"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("n", "normalize", "Normalize matrix", show=False),
    ]
    DEFAULT_CSS = """
    RunScreen #facts { width: 40%; max-width: 50; border-right: solid $primary; }
    RunScreen #right { width: 1fr; }
    RunScreen TabbedContent { height: 2fr; }
    RunScreen #metric-filter { dock: top; }
    RunScreen #log { height: 1fr; min-height: 5; border-top: solid $primary; }
    RunScreen #no-metrics { padding: 1 2; }
    """

    def __init__(self, project: api.Project, name: str, histories: MetricHistories) -> None:
        super().__init__()
        self.project = project
        self.run_name = name
        self.histories = histories
        self.info: dict[str, Any] | None = None
        self.pattern = ""
        self._log_offset = 0
        self._charts: dict[str, Chart] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with VerticalScroll(id="facts"):
                yield Static("", id="record")
            with Vertical(id="right"):
                with TabbedContent(initial="charts"):
                    with TabPane("Charts", id="charts"):
                        yield Input(
                            placeholder="metrics: a name or glob, e.g. val_* (enter)", id="metric-filter"
                        )
                        yield Static("No metrics yet.", id="no-metrics")
                        yield VerticalScroll(id="plots")
                    with TabPane("Epochs", id="epochs-tab"):
                        table: DataTable = DataTable(id="epochs", cursor_type="none")
                        table.add_column("epoch", key="epoch")
                        for key in EPOCH_METRICS:
                            table.add_column(key, key=key)
                        yield table
                    with TabPane("Evaluation", id="evaluation-tab"):
                        yield EvaluationView(id="evaluation")
                yield RichLog(id="log", max_lines=LOG_TAIL_LINES, wrap=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_name
        self.query_one("#metric-filter", Input).display = False
        self._load()
        self.set_interval(REFRESH_SECONDS, self._load)

    @work(thread=True, exclusive=True, group="run")
    def _load(self) -> None:
        try:
            handle = self.project.run(f"@{self.run_name}")
            info = handle.info()  # before the log: no line is missed
        except VmlError:  # deleted meanwhile (ml delete, another dashboard)
            self.app.call_from_thread(self._gone)
            return
        points = self.histories.points(info)
        evaluation = None
        if info["status"] not in api.ACTIVE_STATES:
            try:
                evaluation = handle.evaluation()
            except VmlError:  # not evaluated: the tab says how to get it
                pass
        log, self._log_offset = handle.log_since(
            self._log_offset, partial=info["status"] not in api.ACTIVE_STATES, limit=LOG_TAIL_BYTES
        )
        self.app.call_from_thread(self._show, info, points, log, evaluation)

    def _gone(self) -> None:
        if self.is_current:
            self.notify(f"{self.run_name} was deleted", severity="warning")
            self.dismiss()

    def _show(
        self, info: dict[str, Any], points: list[dict[str, Any]], log: str, evaluation: dict[str, Any] | None
    ) -> None:
        self.info = info
        self.sub_title = f"{self.run_name} ({info['status']})"
        self.query_one("#record", Static).update(record_text(info, self.project.root))
        self._show_charts(points)
        self._show_epochs(points)
        self.query_one(EvaluationView).show(self.run_name, info["status"], evaluation)
        widget = self.query_one("#log", RichLog)
        for line in log.splitlines():
            widget.write(line)

    def _show_charts(self, points: list[dict[str, Any]]) -> None:
        stepwise = per_step_keys(points)
        keys = metric_names(points, self.pattern)
        groups = chart_groups([k for k in keys if k not in stepwise])
        step_groups = [(key, [key]) for key in keys if key in stepwise]
        wanted = [title for title, _ in groups] + [f"{title} (per step)" for title, _ in step_groups]
        plots = self.query_one("#plots", VerticalScroll)
        if list(self._charts) != wanted:
            for chart in self._charts.values():
                chart.remove()
            self._charts = {title: Chart() for title in wanted}
            plots.mount_all(self._charts.values())
        for title, members in groups:
            self._charts[title].show(title, "epoch", {k: epoch_series(points, k) for k in members})
        for title, members in step_groups:
            epoch, series = latest_epoch_series(points, members[0])
            self._charts[f"{title} (per step)"].show(f"{title}, epoch {epoch}", "step", {title: series})
        empty = self.query_one("#no-metrics", Static)
        empty.display = not wanted
        empty.update(f"No metric matches {self.pattern!r}." if self.pattern else "No metrics yet.")

    def _show_epochs(self, points: list[dict[str, Any]]) -> None:
        epochs = epoch_table(points)
        table = self.query_one("#epochs", DataTable)
        for epoch in sorted(epochs)[table.row_count :]:
            values = epochs[epoch]
            table.add_row(str(epoch), *(f"{values[k]:.4f}" if k in values else "-" for k in EPOCH_METRICS))

    def action_filter_metrics(self) -> None:
        if not self.query(TabbedContent):  # a key typed ahead, before the screen is built
            return
        self.query_one(TabbedContent).active = "charts"
        box = self.query_one("#metric-filter", Input)
        box.value, box.display = "", True
        self.set_focus(box)  # at once: keys typed right after the slash go to the box

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "metric-filter":
            event.stop()
            self.pattern = event.value.strip()
            event.input.display = bool(self.pattern)
            self.set_focus(None)  # the screen's keys work again
            self._load()

    def action_back(self) -> None:
        box = self.query_one("#metric-filter", Input)
        if box.has_focus:
            box.value, self.pattern, box.display = "", "", False
            self._load()
        else:
            self.app.pop_screen()

    def action_normalize(self) -> None:
        self.query_one(TabbedContent).active = "evaluation-tab"
        self.query_one(EvaluationView).toggle_normalized()

    def action_cancel_run(self) -> None:
        self.app.cancel_runs([self.run_name])
