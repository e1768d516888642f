"""The run screen's Evaluation tab: the test split's metrics, the per-class report,
the confusion matrix (the screen's ``n`` shows it normalized) and the ROC and PR curves."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from vml.evaluate.plots import CURVE_KINDS, cell_text, confusion_matrix, curves, legend
from vml.evaluate.report import CLASS_COLUMNS, class_rows
from vml.tui.charts import Plot


class EvaluationView(VerticalScroll):
    """What ``ml plot`` and ``ml show`` say about a run's evaluation, in one tab."""

    DEFAULT_CSS = """
    EvaluationView #evaluation-summary { padding: 0 1; }
    EvaluationView DataTable { height: auto; max-height: 16; margin: 1 0 0 0; }
    EvaluationView Plot { height: 16; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluation: dict[str, Any] | None = None
        self.normalized = False
        self._run = ""
        self._shown: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="evaluation-summary")
        yield DataTable(id="classes", cursor_type="none")
        yield DataTable(id="matrix", cursor_type="none")
        for kind in CURVE_KINDS:
            yield Plot(id=f"{kind}-chart")

    def show(self, run: str, status: str, evaluation: dict[str, Any] | None) -> None:
        """Draw ``evaluation`` (None: say why there is none); unchanged, nothing is redrawn."""
        if self._shown == (run, status) and evaluation == self.evaluation:
            return
        self._shown, self._run, self.evaluation = (run, status), run, evaluation
        summary = self.query_one("#evaluation-summary", Static)
        classification = bool(
            evaluation and evaluation["task"] == "classification" and not evaluation.get("error")
        )
        for widget in self.query(DataTable):
            widget.display = classification
        for widget in self.query(Plot):
            widget.display = classification
        if evaluation is None:
            summary.update(
                f"No evaluation yet: a run is evaluated on its test split when it finishes (ml test {run} evaluates it)."
                if status == "finished"
                else f"No evaluation: the run is {status}."
            )
            return
        metrics = "  ".join(f"{k}: {v:.4f}" for k, v in evaluation["metrics"].items() if v is not None)
        summary.update(
            f"test split: {evaluation.get('samples', '?')} samples\n{metrics}"
            + (f"\n{evaluation['error']}" if evaluation.get("error") else "")
            + ("\nn: normalize the confusion matrix" if classification else "")
        )
        if classification:
            self._show_classes(evaluation)
            self._show_matrix()
            for kind in CURVE_KINDS:
                plot = curves(evaluation, run, kind)
                self.query_one(f"#{kind}-chart", Plot).show(
                    plot.title, plot.xlabel, {legend(c, kind): (c.x, c.y) for c in plot.curves}
                )

    def _show_classes(self, evaluation: dict[str, Any]) -> None:
        table = self.query_one("#classes", DataTable)
        table.clear(columns=True)
        table.add_columns(*CLASS_COLUMNS)
        table.add_rows(class_rows(evaluation))

    def _show_matrix(self) -> None:
        assert self.evaluation is not None
        plot = confusion_matrix(self.evaluation, self._run, self.normalized)
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        table.add_columns("true \\ predicted", *plot.labels)
        for label, row in zip(plot.labels, plot.values, strict=True):
            table.add_row(label, *(cell_text(v, plot.normalized) for v in row))

    def toggle_normalized(self) -> None:
        """Counts, or each true label's shares, in the confusion matrix."""
        if (
            self.evaluation
            and self.evaluation["task"] == "classification"
            and not self.evaluation.get("error")
        ):
            self.normalized = not self.normalized
            self._show_matrix()
