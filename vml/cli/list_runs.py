"""``ml list``: compare runs in a table (or JSON, CSV, markdown)."""

from __future__ import annotations

import re
import sys
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import LIST_FORMATS, check_format, choices
from vml.errors import NotFoundError, UsageError
from vml.params import normalize_key
from vml.views import cell, changed_hyperparameters, check_column, run_value

PAGE_SIZE = 50
# VergeML's ml list filters (vergeml/commands/ls.py): COLUMN -OP VALUE; -neq, -gte and
# -lte are its spellings of -ne, -ge and -le.
_FILTER = re.compile(r"(\S+)\s+(-eq|-ne|-neq|-gt|-ge|-gte|-lt|-le|-lte)\s+(\S.*)")
_VERGEML_OPERATORS = {"-neq": "-ne", "-gte": "-ge", "-lte": "-le"}
_VERGEML_STATUS = {"canceled": "cancelled"}  # VergeML's CANCELED


def list_runs(
    filters: list[str] | None = typer.Argument(
        None,
        metavar="[COLUMN -OP VALUE]...",
        help="VergeML's filters, e.g. test-acc -gt 0.8 or status -eq running "
        "(-eq -ne -gt -ge -lt -le; all must hold): the same as --where.",
    ),
    sort: str | None = typer.Option(
        None, "--sort", "-s", help="Sort by a column or hyperparameter; KEY:desc or -KEY for descending."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help="table, json, csv or md (default: list.format in vergeml.yaml, else table).",
        autocompletion=choices(LIST_FORMATS),
    ),
    output: str | None = typer.Option(None, "--output", help="VergeML's name for --format."),
    order: str | None = typer.Option(
        None,
        "--order",
        "-o",
        help="asc or desc: the direction of --sort (VergeML's; vml's: --sort KEY:desc).",
    ),
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
    if output is not None and fmt is not None and fmt != output:
        raise UsageError(f"--format {fmt} and --output {output} disagree (give one of them)")
    project = api.Project()
    # vergeml.yaml's list: section gives the defaults; the command line wins.
    settings = project.config
    fmt = fmt or output or settings.list_format or "table"
    check_format(fmt, LIST_FORMATS)
    status = [_status(s) for s in status]
    where = [*where, *_filters(filters or [])]
    sort = _vergeml_sort(sort, order) or (settings.list_sort if sweep is None else None)
    if sweep is not None:
        where = [*where, f"sweep={sweep}"]
        sort = sort or _best_first(project, sweep)
        only_changed = True
    selection = {"status": status or None, "where": where or None}
    if fmt == "json":
        render.print_json_lines(project.runs_json(sort, **selection))
        return
    page = fmt == "table" and not show_all
    # Only the page is read, and the rest counted (in SQL): with 100,000 runs, reading
    # them all would be most of the time.
    runs = project.list_runs(sort, limit=PAGE_SIZE if page else None, **selection)
    total = project.count_runs(**selection) if page and len(runs) == PAGE_SIZE else len(runs)
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


def _status(value: str) -> str:
    """A run state as typed, in any case (VergeML's RUNNING, CANCELED)."""
    value = value.lower()
    return _VERGEML_STATUS.get(value, value)


def _filters(words: list[str]) -> list[str]:
    """VergeML's positional filters as ``--where`` conditions; ``and`` between two
    filters is allowed."""
    conditions = []
    for i, word in enumerate(words):
        if word.lower() == "and" and 0 < i < len(words) - 1:
            continue
        match = _FILTER.fullmatch(word.strip())
        if match is None:
            raise UsageError(
                f"cannot read {word!r} as a filter (write COLUMN -OP VALUE, e.g. ml list test-acc -gt 0.8; "
                "operators: -eq -ne -gt -ge -lt -le)"
            )
        column, op, value = match.groups()
        if normalize_key(column) == "status":
            value = _status(value)
            if value not in api.RUN_STATES:
                raise UsageError(
                    f"unknown status {value!r} in {word!r} (use one of: {', '.join(api.RUN_STATES)})"
                )
        conditions.append(f"{column} {_VERGEML_OPERATORS.get(op, op)} {value}")
    return conditions


def _vergeml_sort(sort: str | None, order: str | None) -> str | None:
    """``--sort`` with VergeML's ``--order asc|desc`` applied, and its ``created-at``
    column read as vml's ``training_start``."""
    if sort is not None and normalize_key(sort.lstrip("-").removesuffix(":desc")) == "created_at":
        sort = (
            ("-" if sort.startswith("-") else "")
            + "training_start"
            + (":desc" if sort.endswith(":desc") else "")
        )
    if order is None:
        return sort
    if order.lower() not in ("asc", "desc"):
        raise UsageError(f"unknown --order {order!r} (use asc or desc)")
    key = (sort or "training_start").lstrip("-").removesuffix(":desc").removesuffix(":asc")
    sort = key if order.lower() == "asc" else f"{key}:desc"
    direction = "ascending" if order.lower() == "asc" else "descending"
    print(
        f"ml: note: --order {order.lower()} sorts by {key} {direction} "
        f"(VergeML 0.1.4 sorted asc descending and desc ascending); vml's form: --sort {sort}",
        file=sys.stderr,
    )
    return sort


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
