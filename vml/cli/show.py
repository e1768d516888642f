"""``ml show`` and ``ml logs``: one run's record, its log and its metrics."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import RUN, TABLE_JSON, check_format, format_option
from vml.errors import NotFoundError, UsageError
from vml.evaluate.report import CLASS_COLUMNS, class_rows, summary
from vml.paths import REPRO_FILE
from vml.repro import record_fields
from vml.views import EPOCH_METRICS, TEST_METRICS, epoch_table

FOLLOW_POLL_SECONDS = 0.5


def show(run: str = RUN, fmt: str = format_option(TABLE_JSON)) -> None:
    """Show everything recorded about one run: status, process, hyperparameters, results."""
    check_format(fmt, TABLE_JSON)
    handle = api.Project().run(run)
    info = handle.info()
    record = handle.reproduction()
    try:
        evaluation = summary(handle.evaluation())
    except UsageError:  # not evaluated (yet)
        evaluation = None
    if fmt == "json":
        render.print_json({**info, "evaluation": evaluation, "reproducibility": record})
        return
    # A classification has no test_mae, a regression no test_f1: those rows are left out.
    rows = [
        [key, _text(value)]
        for key, value in info.items()
        if key != "hyperparameters" and not (key in TEST_METRICS and value is None)
    ]
    rows += [[f"  {key}", _text(value)] for key, value in sorted(info["hyperparameters"].items())]
    index = (
        next(i for i, row in enumerate(rows) if row[0].startswith("  "))
        if info["hyperparameters"]
        else len(rows)
    )
    rows.insert(index, ["hyperparameters", ""])
    if record is not None:
        rows += [["reproducibility", f"{handle.name}/{REPRO_FILE}"]]
        rows += [[f"  {field}", text] for field, text in record_fields(record)]
    render.print_table(["field", "value"], rows)
    if evaluation and evaluation.get("classes"):
        print(f"\nevaluation: {evaluation['samples']} test samples")
        render.print_table(CLASS_COLUMNS, class_rows(evaluation))


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def logs(
    run: str = RUN,
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new lines until the run ends."),
    metrics: bool = typer.Option(
        False, "--metrics", "-m", help="Print the per-epoch metrics instead of the log."
    ),
) -> None:
    """Print a run's log (step lines, epoch summaries, how it ended), or its metrics."""
    handle = api.Project().run(run)
    if handle.status() == "deleted":
        raise NotFoundError(f"run {handle.name!r} was deleted (its folder and log are gone)")
    if metrics:
        _print_metrics(handle, follow)
        return
    offset = 0
    while True:
        ended = handle.status() not in api.ACTIVE_STATES  # read before the file: no line is missed
        # Only whole lines while it runs: the writer may be in the middle of one.
        text, offset = handle.log_since(offset, partial=ended)
        sys.stdout.write(text)
        sys.stdout.flush()
        if not follow or ended:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


def _print_metrics(handle: api.Run, follow: bool) -> None:
    """One row per epoch: loss, acc, val_loss, val_acc (as recorded)."""
    shown = 0
    header_done = False
    while True:
        ended = handle.status() not in api.ACTIVE_STATES
        epochs = epoch_table(handle.metrics())
        present = [k for k in EPOCH_METRICS if any(k in values for values in epochs.values())]
        for epoch in sorted(epochs)[shown:]:
            if not header_done:
                print("  ".join(f"{c:>9}" for c in ("epoch", *present)))
                header_done = True
            print(
                "  ".join([f"{epoch:>9}", *(f"{epochs[epoch].get(k, float('nan')):>9.4f}" for k in present)])
            )
            shown += 1
        sys.stdout.flush()
        if not follow or ended:
            if not header_done:
                print(f"no epoch has ended yet in run {handle.name!r}", file=sys.stderr)
            return
        time.sleep(FOLLOW_POLL_SECONDS)
