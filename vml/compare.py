"""Runs side by side: results, final metrics and hyperparameters, with what differs.
``ml compare`` prints it; the dashboard's compare screen shows it."""

from __future__ import annotations

from typing import Any

from vml import api
from vml.errors import UsageError

COMPARED_RESULTS = ("model", "status", "epoch", "best_epoch", "best_metric", "test_acc", "test_loss")
FINAL_METRICS = ("loss", "acc", "val_loss", "val_acc")


def final_values(points: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of each epoch metric."""
    return {p["key"]: p["value"] for p in points if p["key"] in FINAL_METRICS}


def compare_rows(
    runs: list[dict[str, Any]], finals: list[dict[str, float]] | None = None
) -> list[tuple[str, list[Any], bool]]:
    """``(field, value per run, differs)``: the results, each run's last value of the
    epoch metrics (``finals``, one mapping per run), then every hyperparameter, those
    that differ first."""
    rows = [(key, [run[key] for run in runs]) for key in COMPARED_RESULTS]
    rows += [(f"final {key}", [final.get(key) for final in finals]) for key in FINAL_METRICS if finals]
    params = sorted({key for run in runs for key in run["hyperparameters"]})
    hyper = [(key, [run["hyperparameters"].get(key) for run in runs]) for key in params]
    hyper.sort(key=lambda row: not _differs(row[1]))  # stable: differing first, each group by name
    return [(field, values, _differs(values)) for field, values in rows + hyper]


def text(value: Any, field: str = "") -> str:
    """A compared value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if field in COMPARED_RESULTS or field.startswith("final ") else f"{value:g}"
    return str(value)


def _differs(values: list[Any]) -> bool:
    return len({repr(v) for v in values}) > 1


def compare(
    project: api.Project, refs: list[str]
) -> tuple[list[dict[str, Any]], list[tuple[str, list[Any], bool]]]:
    """The runs ``refs`` (names, prefixes, @last) and their comparison rows."""
    from vml.run import Run

    if len(refs) < 2:
        raise UsageError("compare needs two or more runs, e.g. ml compare @last brave-otter")
    rows = [project.find_run(ref) for ref in refs]
    runs = [api.public_run(row) for row in rows]
    finals = [final_values(Run(project, row["name"]).metrics()) for row in rows]
    return runs, compare_rows(runs, finals)
