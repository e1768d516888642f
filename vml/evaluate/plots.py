"""What the evaluation plots show, drawn by whoever renders them: the terminal
(plotext, ``ml plot``), the dashboard's Evaluation tab, or a PNG or SVG file
(matplotlib, ``vml.evaluate.figures``). Everything here reads ``evaluation.json``'s
contents; nothing imports torch or scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vml.errors import UsageError, did_you_mean

PLOT_KINDS = ("confusion-matrix", "roc", "pr")
CURVE_KINDS = ("roc", "pr")
# (title, x axis, y axis, the area's name) of each curve plot
CURVE_AXES = {
    "roc": ("ROC", "false positive rate", "true positive rate", "AUC"),
    "pr": ("precision-recall", "recall", "precision", "AP"),
}


@dataclass(frozen=True)
class Curve:
    """One line: a class against the rest, of one run."""

    name: str
    x: list[float]
    y: list[float]
    area: float | None


@dataclass(frozen=True)
class CurvePlot:
    kind: str  # roc or pr
    title: str
    xlabel: str
    ylabel: str
    curves: tuple[Curve, ...]


@dataclass(frozen=True)
class MatrixPlot:
    """A confusion matrix: rows are the true labels, columns the predicted ones;
    ``normalized``: each row divided by its count (the recall of each class on the
    diagonal)."""

    title: str
    labels: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    normalized: bool


def check_kind(kind: str) -> str:
    """``kind`` if it names a plot; else one line that lists them."""
    if kind not in PLOT_KINDS:
        raise UsageError(
            f"unknown plot {kind!r} ({did_you_mean(kind, PLOT_KINDS, 'use ' + ', '.join(PLOT_KINDS))})"
        )
    return kind


def _classification(evaluation: dict[str, Any], run: str, kind: str) -> None:
    if evaluation["task"] != "classification":
        raise UsageError(
            f"run {run!r} is a regression: {kind} plots are for classifications "
            f"(its test_mae, test_rmse and test_r2 are in ml show {run})"
        )
    if evaluation.get("error"):
        raise UsageError(f"run {run!r} has no {kind} plot: {evaluation['error']}")


def _label(evaluation: dict[str, Any], run: str, label: str | None) -> str | None:
    if label is None or label in evaluation["labels"]:
        return label
    hint = did_you_mean(label, evaluation["labels"], f"its labels: {', '.join(evaluation['labels'][:20])}")
    raise UsageError(f"--class {label!r} is not a label of run {run!r} ({hint})")


def confusion_matrix(
    evaluation: dict[str, Any], run: str, normalize: bool = False, label: str | None = None
) -> MatrixPlot:
    """Run ``run``'s confusion matrix; with ``label``, that class against the rest
    (a 2x2 matrix)."""
    _classification(evaluation, run, "confusion-matrix")
    label = _label(evaluation, run, label)
    labels = list(evaluation["labels"])
    counts = [list(map(float, row)) for row in evaluation["confusion_matrix"]]
    if label is not None:
        i = labels.index(label)
        rest = [j for j in range(len(labels)) if j != i]
        hit, missed = counts[i][i], sum(counts[i][j] for j in rest)
        false_alarm = sum(counts[j][i] for j in rest)
        rejected = sum(counts[j][k] for j in rest for k in rest)
        counts, labels = [[hit, missed], [false_alarm, rejected]], [label, f"not {label}"]
    if normalize:
        counts = [[value / (sum(row) or 1.0) for value in row] for row in counts]
    title = f"confusion matrix of {run}" + (" (each true label's share)" if normalize else "")
    return MatrixPlot(title, tuple(labels), tuple(tuple(row) for row in counts), normalize)


def curves(evaluation: dict[str, Any], run: str, kind: str, label: str | None = None) -> CurvePlot:
    """Run ``run``'s ROC or PR curves: ``label`` against the rest; by default the
    positive class of a binary run, or every class of a multi-class one."""
    _classification(evaluation, run, kind)
    label = _label(evaluation, run, label)
    kept = evaluation["curves"][kind]
    if label is not None:
        chosen = [label]
    elif evaluation.get("positive"):
        chosen = [evaluation["positive"]]
    else:
        chosen = [name for name in evaluation["labels"] if name in kept]
    area = "auc" if kind == "roc" else "ap"
    by_label = {row["label"]: row[area] for row in evaluation["classes"]}
    lines = tuple(
        Curve(name, kept[name]["x"], kept[name]["y"], by_label.get(name)) for name in chosen if name in kept
    )
    if not lines:
        raise UsageError(f"run {run!r} has no {kind} curve for {label!r}: the test split has no sample of it")
    title, xlabel, ylabel, _ = CURVE_AXES[kind]
    return CurvePlot(kind, f"{title} of {run}", xlabel, ylabel, lines)


def overlay(plots: list[tuple[str, CurvePlot]]) -> CurvePlot:
    """Several runs' curves in one plot (``ml compare --plot roc``): each line named
    by its run (and its class, when a run has several)."""
    kind = plots[0][1].kind
    lines = []
    for run, plot in plots:
        for curve in plot.curves:
            name = run if len(plot.curves) == 1 else f"{run} {curve.name}"
            lines.append(Curve(name, curve.x, curve.y, curve.area))
    title, xlabel, ylabel, _ = CURVE_AXES[kind]
    return CurvePlot(kind, f"{title}: {', '.join(run for run, _ in plots)}", xlabel, ylabel, tuple(lines))


def legend(curve: Curve, kind: str) -> str:
    """``cat (AUC 0.9731)``."""
    area = CURVE_AXES[kind][3]
    return f"{curve.name} ({area} {curve.area:.4f})" if curve.area is not None else curve.name


def cell_text(value: float, normalized: bool) -> str:
    """A confusion-matrix cell: a count, or a share to two decimals."""
    return f"{value:.2f}" if normalized else str(int(value))
