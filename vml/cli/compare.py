"""``ml compare``: runs side by side, in plain text or JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from vml import api
from vml.cli import plot as cli_plot
from vml.cli import render
from vml.cli.options import COMPARED_RUNS, TABLE_JSON, check_format, format_option
from vml.views import compared_text


def compare_runs(
    runs: list[str] = COMPARED_RUNS,
    fmt: str = format_option(TABLE_JSON),
    show_all: bool = typer.Option(False, "--all", "-a", help="Also the hyperparameters that are the same."),
    plot: str | None = typer.Option(None, "--plot", help="Overlay the runs' roc or pr curves instead."),
    label: str | None = cli_plot.LABEL,
    out: Path | None = cli_plot.OUT,
) -> None:
    """Compare runs side by side: results, final metrics and the hyperparameters that differ."""
    check_format(fmt, TABLE_JSON)
    if plot is not None:
        cli_plot.show(api.Project().compare_plot(runs, plot, label, out), out)
        return
    shown, rows = api.Project().compare(runs)
    names = [run["instance"] for run in shown]
    hyper = set(shown[0]["hyperparameters"]).union(*(run["hyperparameters"] for run in shown))
    rows = [row for row in rows if show_all or row[2] or row[0] not in hyper]
    if fmt == "json":
        render.print_json(
            {
                "runs": names,
                "rows": [
                    {"field": f, "values": dict(zip(names, v, strict=True)), "differs": d} for f, v, d in rows
                ],
            }
        )
        return
    render.print_table(
        ["", "field", *names], (["*" if d else "", f, *(compared_text(x, f) for x in v)] for f, v, d in rows)
    )
