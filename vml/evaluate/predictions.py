"""A run's test-split predictions, kept in its folder as ``predictions.npz``."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vml.atomic import write_bytes_atomic
from vml.errors import UsageError
from vml.paths import PREDICTIONS


@dataclass(frozen=True)
class Predictions:
    """The test split's true targets and the model's scores for them.

    Classification: ``y_true`` holds class indices into ``labels`` and ``scores`` the
    class probabilities, one row per sample. Regression: ``labels`` is empty and
    ``scores`` holds the predicted values."""

    y_true: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]

    @property
    def task(self) -> str:
        return "classification" if self.labels else "regression"

    @property
    def y_pred(self) -> np.ndarray:
        """Predicted class indices (the highest score), or the predicted values."""
        return self.scores.argmax(axis=1) if self.labels else self.scores


def save_predictions(folder: Path, predictions: Predictions) -> Path:
    """Write ``predictions.npz`` in ``folder`` atomically; its path."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        y_true=predictions.y_true,
        scores=predictions.scores,
        labels=np.array(predictions.labels, dtype=str),
    )
    path = folder / PREDICTIONS
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_predictions(folder: Path) -> Predictions:
    """The predictions kept in run folder ``folder``."""
    path = folder / PREDICTIONS
    if not path.is_file():
        raise UsageError(f"run {folder.name!r} has no {PREDICTIONS} (ml test {folder.name} makes it)")
    with np.load(path, allow_pickle=False) as arrays:
        return Predictions(arrays["y_true"], arrays["scores"], tuple(str(s) for s in arrays["labels"]))
