"""Evaluation plots as image files (``ml plot ... --out FILE``), drawn with
matplotlib's object API: a ``Figure`` of its own and no pyplot, so no display, GUI
backend or global state is involved."""

from __future__ import annotations

import io
from pathlib import Path

from vml.atomic import write_bytes_atomic
from vml.errors import UsageError
from vml.evaluate.plots import CurvePlot, MatrixPlot, cell_text, legend

FORMATS = ("png", "svg", "pdf")
DPI = 120


def check_output(path: Path) -> str:
    """The image format ``path`` asks for (its suffix), checked before any work."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UsageError(f"--out {path}: write a .png, .svg or .pdf file (e.g. --out roc.png)")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: folder {path.parent} does not exist (create it first)")
    return suffix


def write_figure(plot: CurvePlot | MatrixPlot, path: Path) -> Path:
    """Draw ``plot`` into ``path`` (PNG, SVG or PDF by its suffix), atomically."""
    fmt = check_output(path)
    from matplotlib import rc_context
    from matplotlib.figure import Figure  # ~0.3 s to import: only when writing a file

    if isinstance(plot, MatrixPlot):
        size = max(4.0, 0.55 * len(plot.labels) + 2.5)
        figure = Figure(figsize=(size + 1.0, size), layout="constrained")
        _draw_matrix(figure, plot)
    else:
        figure = Figure(figsize=(6.4, 5.2), layout="constrained")
        _draw_curves(figure, plot)
    buffer = io.BytesIO()
    # No creation date and a fixed id salt: the same data gives the same file.
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    # SVG text stays text (searchable, selectable, a third the size) rather than paths.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "vml"}):
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _draw_matrix(figure, plot: MatrixPlot) -> None:
    axes = figure.add_subplot()
    values = [list(row) for row in plot.values]
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if plot.normalized else None)
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = range(len(plot.labels))
    axes.set_xticks(ticks, plot.labels, rotation=45 if len(plot.labels) > 6 else 0, ha="right")
    axes.set_yticks(ticks, plot.labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(plot.title)
    top = max((max(row) for row in values), default=0) or 1
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            dark = value > top / 2
            axes.text(
                j,
                i,
                cell_text(value, plot.normalized),
                ha="center",
                va="center",
                color="white" if dark else "black",
                fontsize=8,
            )


def _draw_curves(figure, plot: CurvePlot) -> None:
    axes = figure.add_subplot()
    if plot.kind == "roc":
        axes.plot([0, 1], [0, 1], linestyle=":", color="black", linewidth=1, label="chance")
    for curve in plot.curves:
        # A PR curve is a step function: precision holds until recall next rises.
        drawstyle = "steps-post" if plot.kind == "pr" else "default"
        axes.plot(curve.x, curve.y, drawstyle=drawstyle, linewidth=1.5, label=legend(curve, plot.kind))
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(plot.xlabel)
    axes.set_ylabel(plot.ylabel)
    axes.set_title(plot.title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right" if plot.kind == "roc" else "lower left", fontsize=8)
