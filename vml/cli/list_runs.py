"""``ml list``: compare runs in a table (or JSON, CSV, markdown)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import LIST_FORMATS, check_format, format_option
from vml.errors import NotFoundError
from vml.params import normalize_key
from vml.views import cell, changed_hyperparameters, check_column, run_value

PAGE_SIZE = 50


def list_runs(
    sort: str | None = typer.Option(
        None, "--sort", "-s", help="Sort by a column or hyperparameter; KEY:desc or -KEY for descending."
    ),
    fmt: str = format_option(LIST_FORMATS),
    status: list[str] = typer.Option([], "--status", help="Only runs in this state (repeatable)."),
    where: list[str] = typer.Option(
        [],
        "--where",
        "-w",
        help='Only runs matching, e.g. "test_acc>0.9" or "test-acc -gt 0.9" (repeatable).',
    ),
    columns: str | None = typer.Option(
        None,
        "--columns",
        "-c",
        help="Comma-separated columns; hyperparameters too (e.g. instance,learning_rate).",
    ),
    only_changed: bool = typer.Option(
        False, "--only-changed", help="Add the hyperparameters whose values differ across the listed runs."
    ),
    show_all: bool = typer.Option(
        False, "--all", "-a", help=f"Show every run, not only the newest {PAGE_SIZE}."
    ),
    sweep: str | None = typer.Option(
        None,
        "--sweep",
        help="Only the runs of this sweep, best first by their monitored metric, with the hyperparameters that differ.",
    ),
) -> None:
    """List the project's runs, newest first."""
    check_format(fmt, LIST_FORMATS)
    project = api.Project()
    if sweep is not None:
        where = [*where, f"sweep={sweep}"]
        sort = sort or _best_first(project, sweep)
        only_changed = True
    page = fmt == "table" and not show_all
    if page and not (sort or where or "deleted" in status):
        # Only the page is read, and the rest counted: with thousands of runs, reading
        # them all would be most of the time.
        runs = project.list_runs(status=status or None, limit=PAGE_SIZE)
        total = project.count_records(status or None) if len(runs) == PAGE_SIZE else len(runs)
    else:
        runs = project.list_runs(sort, status=status or None, where=where or None)
        total = len(runs)
        runs = runs[:PAGE_SIZE] if page else runs
    if fmt == "json":
        render.print_json(runs)
        return
    chosen = _columns(project, runs, columns)
    if sweep is not None and "best_metric" not in chosen:
        chosen += ("best_metric",)
    if only_changed:
        chosen += tuple(k for k in changed_hyperparameters(runs) if k not in chosen)
    if fmt == "csv":
        render.print_csv(chosen, ([_raw(run_value(r, c)) for c in chosen] for r in runs))
        return
    if not runs:
        print("no runs match" if status or where else "no runs yet (start one with: ml train)")
        return
    hidden = total - len(runs)
    rows = ([cell(r, c) for c in chosen] for r in runs)
    if fmt == "md":
        render.print_markdown_table(chosen, rows)
    else:
        render.print_table(chosen, rows)
    if hidden:
        print(
            f"{hidden} more run(s) not shown (--all shows them, --sort/--where narrow them)", file=sys.stderr
        )


def _columns(project: api.Project, runs: list[dict[str, Any]], columns: str | None) -> tuple[str, ...]:
    if columns is None:
        return project.list_columns()
    wanted = tuple(normalize_key(c) for c in columns.split(",") if c.strip())
    known = project.known_columns(runs)
    for column in wanted:
        check_column(column, known, "--columns", "ml list --format json shows them")
    return wanted or project.list_columns()


def _best_first(project: api.Project, sweep: str) -> str:
    """Sort by the monitored metric, best first: val_loss ascending, else descending."""
    runs = project.list_runs(where=f"sweep={sweep}", limit=1)
    if not runs:
        raise NotFoundError(f"no runs in sweep {sweep!r} (ml list --columns instance,sweep shows the sweeps)")
    return "best_metric" if runs[0]["monitor"] == "val_loss" else "-best_metric"


def _raw(value: Any) -> Any:
    return "" if value is None else value
