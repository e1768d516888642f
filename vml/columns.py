"""How a run's columns read in a table: ``ml list`` and the dashboard show the same text."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from vml.api import run_value

METRIC_COLUMNS = ("test_acc", "test_loss", "best_metric")


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
    from vml.run import percent_done

    if run["status"] != "running" or not run["training_start"]:
        return None
    done = percent_done(run["status"], run["epoch"], run["epochs"], run["batch"], run["batches"])
    if done <= 0:
        return None
    now = now or datetime.now(timezone.utc)
    elapsed = (now - datetime.fromisoformat(run["training_start"])).total_seconds()
    return max(elapsed, 0.0) * (100.0 - done) / done
