"""``ml list``: compare runs in a table (or JSON, CSV)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.errors import UsageError


def list_runs(
    sort: str | None = typer.Option(
        None, "--sort", "-s", help="Sort by a column or hyperparameter; KEY:desc or -KEY for descending."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
) -> None:
    """List the project's runs, newest first."""
    if fmt not in render.FORMATS:
        raise UsageError(f"unknown format {fmt!r} (use one of: {', '.join(render.FORMATS)})")
    project = api.Project()
    runs = project.list_runs(sort)
    if fmt == "json":
        render.print_json(runs)
        return
    columns = project.list_columns()
    if fmt == "csv":
        render.print_csv(columns, ([_raw(api.run_value(r, c)) for c in columns] for r in runs))
        return
    if not runs:
        print("no runs yet (start one with: ml train)")
        return
    render.print_table(columns, ([_cell(r, c) for c in columns] for r in runs))


METRIC_COLUMNS = ("test_acc", "test_loss", "best_metric")


def _raw(value: Any) -> Any:
    return "" if value is None else value


def _cell(run: dict[str, Any], column: str) -> str:
    value = api.run_value(run, column)
    if value is None:
        return "-"
    if column in ("training_start", "training_end"):
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    if column == "epoch":
        return f"{value}/{run['epochs']}"
    if column == "batch":
        return f"{value}/{run['batches']}"
    if isinstance(value, float):
        return f"{value:.4f}" if column in METRIC_COLUMNS else f"{value:g}"
    return str(value)
