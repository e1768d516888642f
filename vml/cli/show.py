"""``ml show`` and ``ml logs``: one run's record, its log and its metrics."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.errors import NotFoundError, UsageError

RUN = typer.Argument(..., help="A run: its name, @name, a unique prefix, or @last.")
FOLLOW_POLL_SECONDS = 0.5


def show(run: str = RUN, fmt: str = typer.Option("table", "--format", "-f", help="table or json.")) -> None:
    """Show everything recorded about one run: status, process, hyperparameters, results."""
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r} (use table or json)")
    info = api.Project().run(run).info()
    if fmt == "json":
        render.print_json(info)
        return
    rows = [[key, _text(value)] for key, value in info.items() if key != "hyperparameters"]
    rows += [[f"  {key}", _text(value)] for key, value in sorted(info["hyperparameters"].items())]
    index = (
        next(i for i, row in enumerate(rows) if row[0].startswith("  "))
        if info["hyperparameters"]
        else len(rows)
    )
    rows.insert(index, ["hyperparameters", ""])
    render.print_table(["field", "value"], rows)


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
    path = handle.project.trainings_dir / handle.name / "log.txt"
    position = 0
    while True:
        ended = handle.status() not in api.ACTIVE_STATES  # read before the file: no line is missed
        if path.exists():
            with path.open("rb") as log:
                log.seek(position)
                chunk = log.read()
            # Only whole lines: the writer may be in the middle of one.
            complete = chunk[: chunk.rfind(b"\n") + 1] if not ended else chunk
            sys.stdout.write(complete.decode("utf-8", errors="replace"))
            sys.stdout.flush()
            position += len(complete)
        if not follow or ended:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


def _print_metrics(handle: api.Run, follow: bool) -> None:
    """One row per epoch: loss, acc, val_loss, val_acc (as recorded)."""
    shown = 0
    keys = ("loss", "acc", "val_loss", "val_acc")
    header_done = False
    while True:
        ended = handle.status() not in api.ACTIVE_STATES
        epochs: dict[int, dict[str, float]] = {}
        for point in handle.metrics():
            if point["key"] in keys:
                epochs.setdefault(point["epoch"], {})[point["key"]] = point["value"]
        present = [k for k in keys if any(k in values for values in epochs.values())]
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
