"""Read models: runs in the shapes users see, shared by ``ml`` and the dashboard.

A store row becomes a public run (``ml list --format json``) or a shown run (``ml
show``); public runs are sorted, compared and written as table cells here, so the CLI
and the dashboard show the same text. Nothing here reads the store or imports torch.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vml.errors import UsageError, did_you_mean
from vml.params import normalize_key
from vml.paths import BEST, LOG_FILE
from vml.store.runs import EPOCH_METRICS, TEST_METRICS
from vml.store.selection import FIELD_COLUMNS

LIST_COLUMNS = ("instance", "model", "status", "training_start", "epoch", "batch", "test_acc", "test_loss")
PUBLIC_KEYS = (*FIELD_COLUMNS, "hyperparameters")
COMPARED_RESULTS = ("model", "status", "epoch", "best_epoch", "best_metric", *TEST_METRICS)


def public_run(row: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """A store row in the shape users see (``ml list --format json``); ``status``
    overrides the stored one (``deleted``)."""
    run = {key: row.get(column) for key, column in FIELD_COLUMNS.items()}
    if status is not None:
        run["status"] = status
    run["hyperparameters"] = row["hyperparameters"]
    return run


def show_run(row: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A store row in the shape ``ml show --format json`` prints: the public fields
    plus where the run lives (``folder``) and its process."""
    best = folder / BEST
    return {
        **public_run(row),
        "command": row.get("command"),
        "pid": row["pid"],
        "host": row["host"],
        "heartbeat": row["heartbeat"],
        "resources": json.loads(row["resources"]) if row.get("resources") else None,
        "folder": str(folder),
        "checkpoint": str(best) if best.is_file() else None,
        "log": str(folder / LOG_FILE),
    }


def percent_done(run: dict[str, Any]) -> float:
    """How much of a public run's steps are done, 0-100, to one decimal."""
    if run["status"] == "finished":
        return 100.0
    epochs, steps, step = run["epochs"] or 0, run["batches"] or 0, run["batch"] or 0
    # At an epoch's end the row holds the finished epoch and its last step.
    done = (run["epoch"] or 0) * steps + (step if step < steps else 0)
    return round(min(100.0 * done / max(epochs * steps, 1), 100.0), 1)


def ending(row: dict[str, Any]) -> str:
    """How a run ended, in a few words: ``finished, test_acc 0.9722``, ``crashed: why``."""
    if row["status"] == "finished" and row["test_acc"] is not None:
        return f"finished, test_acc {row['test_acc']:.4f}"
    if row["status"] == "finished" and row.get("test_rmse") is not None:
        return f"finished, test_rmse {row['test_rmse']:.4f}"
    if row["status"] == "pruned" and row.get("prune_reason"):
        return str(row["prune_reason"])
    error = str(row["error"] or "").removeprefix(f"{row['status']}: ")
    return f"{row['status']}: {error}" if error else str(row["status"])


def known_columns(runs: list[dict[str, Any]], declared: set[str] = frozenset()) -> set[str]:
    """Columns ``ml list`` can show, sort or filter on: the run fields, the
    hyperparameters of ``runs`` and the ``declared`` ones."""
    known = set(PUBLIC_KEYS) | declared
    for run in runs:
        known |= set(run["hyperparameters"])
    return known


def check_column(column: str, known: set[str], where: str, otherwise: str) -> str:
    """``column`` if it is ``known``; else ``UsageError`` naming ``where`` it came from."""
    if column not in known:
        raise UsageError(f"unknown column {column!r} in {where} ({did_you_mean(column, known, otherwise)})")
    return column


def run_value(run: dict[str, Any], key: str) -> Any:
    """A column of a public run: one of its fields or a hyperparameter."""
    return run[key] if key in run else run["hyperparameters"].get(key)


def sort_order(key: str, known: set[str]) -> tuple[str, bool]:
    """``--sort``'s column and whether descending: ``key`` ascending, ``key:desc`` or
    ``-key`` descending; ``UsageError`` for a column not ``known``."""
    descending = key.startswith("-") or key.endswith(":desc")
    field = normalize_key(key.lstrip("-").removesuffix(":desc").removesuffix(":asc"))
    if field not in known:
        hint = did_you_mean(field, known, f"e.g. {', '.join(LIST_COLUMNS[:4])}")
        raise UsageError(f"cannot sort by {key!r}: no such column ({hint})")
    return field, descending


def sort_by(runs: list[dict[str, Any]], column: str, descending: bool = False) -> list[dict[str, Any]]:
    """``runs`` ordered by ``column`` (a field or hyperparameter); runs without a
    value go last, whichever the direction."""
    present = [r for r in runs if run_value(r, column) is not None]
    missing = [r for r in runs if run_value(r, column) is None]
    return sorted(present, key=lambda r: run_value(r, column), reverse=descending) + missing


def epoch_table(points: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Each epoch's metrics (loss, acc, val_loss, val_acc) from a run's metric points."""
    epochs: dict[int, dict[str, float]] = {}
    for point in points:
        if point["key"] in EPOCH_METRICS:
            epochs.setdefault(point["epoch"], {})[point["key"]] = point["value"]
    return epochs


def final_values(points: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of each epoch metric."""
    return {p["key"]: p["value"] for p in points if p["key"] in EPOCH_METRICS}


def compare_rows(
    runs: list[dict[str, Any]], finals: list[dict[str, float]] | None = None
) -> list[tuple[str, list[Any], bool]]:
    """``(field, value per run, differs)``: the results, each run's last value of the
    epoch metrics (``finals``, one mapping per run), then every hyperparameter, those
    that differ first."""
    rows = [(key, [run[key] for run in runs]) for key in COMPARED_RESULTS]
    # A classification has no test_mae, a regression no test_f1: rows nobody has go.
    rows = [(key, values) for key, values in rows if key not in TEST_METRICS or _any(values)]
    rows += [(f"final {key}", [final.get(key) for final in finals]) for key in EPOCH_METRICS if finals]
    params = sorted({key for run in runs for key in run["hyperparameters"]})
    hyper = [(key, [run["hyperparameters"].get(key) for run in runs]) for key in params]
    hyper.sort(key=lambda row: not _differs(row[1]))  # stable: differing first, each group by name
    return [(field, values, _differs(values)) for field, values in rows + hyper]


def compared_text(value: Any, field: str = "") -> str:
    """A compared value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if field in COMPARED_RESULTS or field.startswith("final ") else f"{value:g}"
    return str(value)


def changed_hyperparameters(runs: list[dict[str, Any]]) -> list[str]:
    """Hyperparameters whose values differ across ``runs`` (missing counts as a value)."""
    keys = sorted({k for run in runs for k in run["hyperparameters"]})
    return [k for k in keys if _differs([run["hyperparameters"].get(k) for run in runs])]


def _any(values: list[Any]) -> bool:
    return any(value is not None for value in values)


def _differs(values: list[Any]) -> bool:
    return len({repr(v) for v in values}) > 1


# How cells read in a table: ``ml list`` and the dashboard show the same text.
METRIC_COLUMNS = (*TEST_METRICS, "best_metric")


def local_time(stamp: str) -> str:
    """A stored UTC timestamp in this machine's time zone, to the minute."""
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")


def cell(run: dict[str, Any], column: str) -> str:
    """Column ``column`` (a run field or hyperparameter) of a public run as text."""
    value = run_value(run, column)
    if value is None:
        return "-"
    if column in ("training_start", "training_end"):
        return local_time(value)
    if column == "epoch":
        return f"{value}/{run['epochs']}"
    if column == "batch":
        return f"{value}/{run['batches'] or '-'}"
    if isinstance(value, float):
        return f"{value:.4f}" if column in METRIC_COLUMNS else f"{value:g}"
    return str(value)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``, ``3d02h``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def eta_seconds(run: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds a running run still needs at its pace so far; None when it is not
    running or has not done a step yet."""
    if run["status"] != "running" or not run["training_start"]:
        return None
    done = percent_done(run)
    if done <= 0:
        return None
    now = now or datetime.now(timezone.utc)
    elapsed = (now - datetime.fromisoformat(run["training_start"])).total_seconds()
    return max(elapsed, 0.0) * (100.0 - done) / done
