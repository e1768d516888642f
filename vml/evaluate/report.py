"""A run's ``evaluation.json``: written once by the process that evaluates it, read
by ``ml show``, ``ml plot`` and the dashboard (without numpy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vml.atomic import write_text_atomic
from vml.errors import UsageError
from vml.paths import EVALUATION


def save_evaluation(folder: Path, evaluation: dict[str, Any]) -> Path:
    """Write ``evaluation.json`` in ``folder`` atomically; its path."""
    path = folder / EVALUATION
    write_text_atomic(path, json.dumps(evaluation, indent=1))
    return path


def load_evaluation(folder: Path) -> dict[str, Any]:
    """The evaluation kept in run folder ``folder``; a run trained before vml kept one
    is pointed to ``ml test``."""
    path = folder / EVALUATION
    if not path.is_file():
        raise UsageError(f"run {folder.name!r} has no predictions yet (ml test {folder.name} makes them)")
    return json.loads(path.read_text(encoding="utf-8"))


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The evaluation without its curves (what ``ml show`` prints)."""
    return {key: value for key, value in evaluation.items() if key != "curves"}


def class_rows(evaluation: dict[str, Any]) -> list[list[str]]:
    """The per-class report as table cells: label, precision, recall, f1, support,
    auc, ap."""

    def text(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    return [
        [row["label"], *(text(row[key]) for key in ("precision", "recall", "f1", "support", "auc", "ap"))]
        for row in evaluation.get("classes", [])
    ]


CLASS_COLUMNS = ("label", "precision", "recall", "f1", "support", "auc", "ap")
