"""Metrics of a run's test-split predictions, through scikit-learn, and the curves
its plots draw: kept in the run folder as ``evaluation.json``.

scikit-learn is imported only here, by the process that evaluates (the run's own
at its end, or ``ml test``): ``sklearn.metrics`` takes 0.6 s to import, more than
``ml plot`` may take in all, so the curves are computed once and kept."""

from __future__ import annotations

from typing import Any

import numpy as np

from vml.evaluate.predictions import Predictions

# The scalar metrics that become run columns (``ml list --sort=-test_f1``); the store
# names them all in ``TEST_METRICS``.
CLASSIFICATION_COLUMNS = ("test_f1", "test_auc", "test_ap")
REGRESSION_COLUMNS = ("test_mae", "test_rmse", "test_r2")
# Curve points are kept to 6 digits: a 10-class digits run's evaluation.json is ~60 kB.
DIGITS = 6


def evaluate(predictions: Predictions) -> dict[str, Any]:
    """The evaluation of ``predictions``: ``metrics`` (the run columns), and for a
    classification the per-class report, the confusion matrix and the ROC and PR
    curves of each class against the rest."""
    if not np.isfinite(predictions.scores).all():
        return {
            "task": predictions.task,
            "labels": list(predictions.labels),
            "metrics": dict.fromkeys(_columns(predictions.task)),
            "error": "the model's test outputs are not all finite numbers",
        }
    if predictions.task == "regression":
        return _regression(predictions)
    return _classification(predictions)


def run_columns(evaluation: dict[str, Any]) -> dict[str, float | None]:
    """The scalar metrics as run columns: ``test_f1`` ... or ``test_mae`` ..."""
    return {key: evaluation["metrics"].get(key) for key in _columns(evaluation["task"])}


def _columns(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_COLUMNS if task == "classification" else REGRESSION_COLUMNS


def _regression(predictions: Predictions) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    y, pred = predictions.y_true, predictions.scores
    enough = len(y) >= 2  # R² is undefined for a single sample
    return {
        "task": "regression",
        "labels": [],
        "metrics": {
            "test_mae": float(mean_absolute_error(y, pred)),
            "test_rmse": float(root_mean_squared_error(y, pred)),
            "test_r2": float(r2_score(y, pred)) if enough else None,
        },
        "samples": len(y),
    }


def _classification(predictions: Predictions) -> dict[str, Any]:
    from sklearn.metrics import (
        accuracy_score,
        auc,
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_recall_curve,
        precision_recall_fscore_support,
        roc_curve,
    )

    labels = list(predictions.labels)
    indices = list(range(len(labels)))
    y, scores, pred = predictions.y_true, predictions.scores, predictions.y_pred
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=indices, zero_division=0)
    classes, roc, pr = [], {}, {}
    for index, label in enumerate(labels):
        truth = y == index
        row = {
            "label": label,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
            "auc": None,
            "ap": None,
        }
        # A class with no test sample (or only those) has no curve against the rest.
        if 0 < truth.sum() < len(y):
            fpr, tpr, _ = roc_curve(truth, scores[:, index])
            # The area of the curve itself: roc_auc_score would compute the curve again
            # (a third of the evaluation's time, measured) for the same number.
            row["auc"] = float(auc(fpr, tpr))
            row["ap"] = float(average_precision_score(truth, scores[:, index]))
            curve_precision, curve_recall, _ = precision_recall_curve(truth, scores[:, index])
            roc[label] = {"x": _rounded(fpr), "y": _rounded(tpr)}
            pr[label] = {"x": _rounded(curve_recall), "y": _rounded(curve_precision)}
        classes.append(row)
    binary = len(labels) == 2
    if binary:  # the second label is the positive class, as sklearn's pos_label=1
        auc, ap = classes[1]["auc"], classes[1]["ap"]
    else:  # one-vs-rest, averaged over the classes the test split has (sklearn's "macro")
        auc = _mean([row["auc"] for row in classes])
        ap = _mean([row["ap"] for row in classes])
    return {
        "task": "classification",
        "labels": labels,
        "positive": labels[1] if binary else None,
        "metrics": {
            "test_acc": float(accuracy_score(y, pred)),
            "test_f1": float(f1_score(y, pred, labels=indices, average="macro", zero_division=0)),
            "test_auc": auc,
            "test_ap": ap,
        },
        "classes": classes,
        "confusion_matrix": confusion_matrix(y, pred, labels=indices).tolist(),
        "curves": {"roc": roc, "pr": pr},
        "samples": len(y),
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), DIGITS) for v in values]
