"""``ml plot``: a run's confusion matrix, ROC or PR curves in the terminal (plotext),
or written to an image file with ``--out``. Reads the run's ``evaluation.json``:
no torch, no scikit-learn."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer

from vml import api
from vml.cli import render
from vml.cli.options import RUN, choices
from vml.evaluate.plots import CurvePlot, MatrixPlot, cell_text, legend

KIND = typer.Argument(
    ...,
    metavar="KIND",
    help="confusion-matrix, roc or pr.",
    autocompletion=choices(("confusion-matrix", "roc", "pr")),
)
LABEL = typer.Option(
    None,
    "--class",
    "-c",
    help="One label against the rest (default: every class, or a binary run's positive one).",
)
OUT = typer.Option(
    None, "--out", "-o", help="Write a .png, .svg or .pdf file instead of drawing in the terminal."
)
PIPE_MARKERS = "+xo*#@%&=~"
# VergeML's spellings: ml plot:roc RUN
ALIASES = {f"plot:{kind}": kind for kind in ("confusion-matrix", "roc", "pr")}


def plot(
    kind: str = KIND,
    run: str = RUN,
    normalize: bool = typer.Option(
        False, "--normalize", "-n", help="Confusion matrix: each true label's row as shares."
    ),
    label: str | None = LABEL,
    out: Path | None = OUT,
) -> None:
    """Plot a run's test-split evaluation: confusion-matrix, roc or pr."""
    drawn = api.Project().plot(run, kind, normalize=normalize, label=label, out=out)
    show(drawn, out)


def show(drawn: CurvePlot | MatrixPlot, out: Path | None) -> None:
    """Say where the file went, or draw ``drawn`` on stdout."""
    if out is not None:
        print(out)
    elif isinstance(drawn, MatrixPlot):
        print_matrix(drawn)
    else:
        print_curves(drawn)


def print_matrix(plot: MatrixPlot) -> None:
    """The matrix as a table: a row per true label, a column per predicted one."""
    print(plot.title)
    columns = ["true \\ predicted", *plot.labels]
    render.print_table(
        columns,
        [
            [label, *(cell_text(v, plot.normalized) for v in row)]
            for label, row in zip(plot.labels, plot.values, strict=True)
        ],
    )


def print_curves(plot: CurvePlot) -> None:
    """The curves drawn with plotext, as wide as the terminal (colours only on one)."""
    import plotext as plt  # 70 ms: only for this

    # The terminal's own size when drawing on one: COLUMNS and LINES may be stale there.
    width, height = (
        os.get_terminal_size(sys.stdout.fileno())
        if sys.stdout.isatty()
        else shutil.get_terminal_size((100, 30))
    )
    plt.clear_figure()
    plt.plotsize(min(width, 120), max(min(height - 2, 30), 15))
    plt.title(plot.title)
    plt.xlabel(plot.xlabel)
    plt.ylabel(plot.ylabel)
    plt.xlim(0, 1)
    plt.ylim(0, 1)
    tty = sys.stdout.isatty()
    if plot.kind == "roc":
        plt.plot([0, 1], [0, 1], label="chance", marker="dot" if tty else ".", color="gray")
    for index, curve in enumerate(plot.curves):
        # Off a terminal the colours go: each line gets a marker of its own instead.
        marker = "braille" if tty else PIPE_MARKERS[index % len(PIPE_MARKERS)]
        plt.plot(curve.x, curve.y, label=legend(curve, plot.kind), marker=marker)
    text = plt.build()
    sys.stdout.write((text if tty else plt.uncolorize(text)) + "\n")
