"""A run's recorded numbers as the exports write them: its metric points with their
steps and wall times, its test scores, and its hyperparameters as plain scalars.

Per-step keys (``step_loss``, ``lr``) count global steps; the per-epoch keys
(``loss``, ``acc``, ``val_loss``, ``val_acc``) count epochs; the test scores are one
point at the last epoch, stamped with the run's end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from vml.store import RunStore
from vml.store.columns import EPOCH_METRICS, TEST_METRICS

STEP = "step"
EPOCH = "epoch"
TEST = "test"


class Point(NamedTuple):
    """One recorded value: ``axis`` says what ``step`` counts (step, epoch; test:
    the last epoch)."""

    key: str
    axis: str
    step: int
    value: float
    wall_time: float  # seconds since the Unix epoch, when it was recorded


def seconds(stamp: str | None) -> float | None:
    """An ISO time as the store writes it (``2026-12-01T23:40:17.790+00:00``) as
    seconds since the Unix epoch."""
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def run_points(db_path: Path, run: dict[str, Any]) -> list[Point]:
    """Every point run ``run`` (a store row) recorded, in step order, then its test
    scores."""
    with RunStore(db_path) as store:
        rows = store.metrics(run["id"])
    return list(_points(rows, run))


def _points(rows: list[dict[str, Any]], run: dict[str, Any]) -> Iterator[Point]:
    # The store writes a second's stamps alike but for the milliseconds: parse each once.
    parsed: dict[str, float] = {}
    last_epoch, last_time = 0, None
    for row in rows:
        stamp = row["time"]
        when = parsed.get(stamp)
        if when is None:
            when = parsed[stamp] = seconds(stamp) or 0.0
        if row["key"] in EPOCH_METRICS:
            yield Point(row["key"], EPOCH, int(row["epoch"]), float(row["value"]), when)
        else:
            yield Point(row["key"], STEP, int(row["step"]), float(row["value"]), when)
        last_epoch, last_time = max(last_epoch, int(row["epoch"] or 0)), max(last_time or when, when)
    ended = seconds(run.get("ended_at")) or last_time or seconds(run.get("started_at")) or 0.0
    for key in TEST_METRICS:
        if run.get(key) is not None:
            yield Point(key, TEST, run.get("epoch") or last_epoch, float(run[key]), ended)


def hyperparameters(run: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The run's model and hyperparameters, each a bool, number or string (a list or
    a null as its JSON text), by name."""
    found: dict[str, Any] = {"model": run.get("model")}
    found.update(run.get("hyperparameters") or {})
    return {key: _scalar(value) for key, value in sorted(found.items())}


def _scalar(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)
