"""The end of a run: its best model scored on the test split, the predictions and
their metrics kept in the run folder, the scalar metrics returned as run columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vml.evaluate.predictions import Predictions, save_predictions
from vml.evaluate.service import evaluate_folder
from vml.train.loop import LossFn, Tensors

BATCH_SIZE = 1024


@torch.no_grad()
def predict_split(
    model: torch.nn.Module, split: Tensors, loss_fn: LossFn, classes: tuple[str, ...] | list[str]
) -> tuple[dict[str, float | None], Predictions]:
    """``test_loss`` and ``test_acc`` (None for a regression) of ``model`` on ``split``,
    and its predictions: class probabilities, or predicted values."""
    model.eval()
    outputs = (
        torch.cat([model(split.x[start : start + BATCH_SIZE]) for start in range(0, len(split), BATCH_SIZE)])
        if len(split)
        else torch.zeros((0, max(len(classes), 1)), device=split.x.device)
    )
    loss = loss_fn(outputs, split.y).item() if len(split) else float("nan")
    y_true = split.y.cpu().numpy()
    if classes:
        scores = torch.softmax(outputs.float(), dim=1).cpu().numpy().astype(np.float64)
        acc = float((scores.argmax(axis=1) == y_true).mean()) if len(split) else None
    else:
        scores = outputs.float().squeeze(-1).cpu().numpy().astype(np.float64)
        acc = None
    return {"test_loss": loss, "test_acc": acc}, Predictions(y_true, scores, tuple(classes))


def keep_evaluation(folder: Path, predictions: Predictions) -> dict[str, Any]:
    """Write ``predictions.npz`` and ``evaluation.json`` in ``folder`` (the metrics
    computed by this process's helper, see ``vml.evaluate.service``); the metrics as
    run columns (``test_f1`` ...)."""
    save_predictions(folder, predictions)
    return evaluate_folder(folder)
