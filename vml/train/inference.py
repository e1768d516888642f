"""Using a trained run: load its best weights, prepare new inputs the way training
did, evaluate, predict and export."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vml.config import IMAGE_PATTERNS
from vml.data.image_source import decode
from vml.data.prepare import stack_images
from vml.errors import UsageError
from vml.models import get_model
from vml.paths import BEST, CONFIG_FILE
from vml.preprocess import OPS, ScalerOp, apply_image_ops
from vml.train.checkpoint import load_checkpoint
from vml.train.evaluation import keep_evaluation, predict_split
from vml.train.loop import Tensors, loss_function

IMAGE_SUFFIXES = {pattern.rsplit(".", 1)[1].lower() for pattern in IMAGE_PATTERNS}


def load_best(folder: Path, root: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The run's network with its best weights (on the CPU, in eval mode) and the
    checkpoint it came from."""
    path = folder / BEST
    if not path.is_file():
        raise UsageError(
            f"run {folder.name!r} has no best.pt yet (wait for its first epoch, or train it again)"
        )
    checkpoint = load_checkpoint(path)
    hparams = checkpoint["hyperparameters"]
    outputs = len(checkpoint["classes"]) or 1
    model = get_model(checkpoint["model_name"], root).build(
        tuple(checkpoint["input_shape"]), outputs, **hparams
    )
    model.load_state_dict(checkpoint["model"])
    return model.eval(), checkpoint


def test_split_scores(
    model: torch.nn.Module, checkpoint: dict[str, Any], x: np.ndarray, y: np.ndarray, folder: Path
) -> dict[str, Any]:
    """The run columns of the test split's scores (``test_loss``, ``test_acc``,
    ``test_f1`` ...), with the predictions and evaluation kept in ``folder`` again."""
    split = Tensors(torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)))
    loss_fn = loss_function(checkpoint["hyperparameters"]["loss"])
    scores, predictions = predict_split(model, split, loss_fn, checkpoint["classes"])
    return scores | keep_evaluation(folder, predictions)


def read_inputs(files: list[Path], checkpoint: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Image files, or the rows of CSV files, prepared as in training: image ops in
    their val/test form, then the scalers with the statistics fitted in training."""
    missing = next((path for path in files if not path.is_file()), None)
    if missing is not None:
        raise UsageError(f"no such file: {missing} (check the path)")
    images = checkpoint["input_type"] == "labeled-image" or len(checkpoint["input_shape"]) == 3
    names: list[str] = []
    if images:
        pictures = []
        for path in files:
            if path.suffix.lower().lstrip(".") not in IMAGE_SUFFIXES:
                raise UsageError(
                    f"{path} is not an image; this run was trained on images (pass .png, .jpg, ...)"
                )
            pictures.append(decode(path))
            names.append(str(path))
        pictures, _ = apply_image_ops(
            tuple(checkpoint["preprocess"]),
            pictures,
            np.zeros(len(pictures)),
            np.random.default_rng(0),
            train=False,
        )
        x = stack_images(pictures, tuple(names))
    else:
        rows = []
        for path in files:
            for line, row in _csv_rows(path, checkpoint["features"]):
                rows.append(row)
                names.append(f"{path}:{line}")
        x = np.asarray(rows, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(checkpoint["input_shape"]):
        raise UsageError(
            f"the inputs have shape {tuple(x.shape[1:])} but the run was trained on {tuple(checkpoint['input_shape'])}"
        )
    return scale(x, checkpoint), names


def scale(x: np.ndarray, checkpoint: dict[str, Any]) -> np.ndarray:
    """Apply the run's fitted scalers to prepared features."""
    states = checkpoint["preprocess_state"]
    for index, entry in enumerate(checkpoint["preprocess"]):
        op = OPS[entry["op"]]
        if isinstance(op, ScalerOp):
            prefix = f"op{index}."
            state = {k.removeprefix(prefix): v.numpy() for k, v in states.items() if k.startswith(prefix)}
            x = op.apply(x, state, {k: v for k, v in entry.items() if k != "op"}).astype(np.float32)
    return x


def _csv_rows(path: Path, features: list[str]):
    if not path.is_file():
        raise UsageError(f"file {path} not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        missing = [f for f in features if f not in header]
        if missing:
            raise UsageError(f"{path} lacks the column(s) {', '.join(missing[:5])} the run was trained on")
        columns = [header.index(f) for f in features]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                yield line, [float(row[c]) for c in columns]
            except (ValueError, IndexError):
                raise UsageError(
                    f"{path} line {line}: not a row of {len(features)} numbers (fix the row)"
                ) from None


@torch.no_grad()
def predict(
    model: torch.nn.Module, checkpoint: dict[str, Any], x: np.ndarray, names: list[str], top: int
) -> list[dict]:
    """The top ``top`` classes with probabilities per input (or the value, for a
    regression)."""
    out = model(torch.from_numpy(x))
    classes = checkpoint["classes"]
    results = []
    for name, row in zip(names, out, strict=True):
        if not classes:
            results.append({"input": name, "value": float(row.squeeze())})
            continue
        probabilities = torch.softmax(row, dim=0)
        values, indices = probabilities.topk(min(top, len(classes)))
        results.append(
            {
                "input": name,
                "predictions": [
                    {"label": classes[i], "probability": float(p)}
                    for p, i in zip(values, indices, strict=True)
                ],
            }
        )
    return results


def export(model: torch.nn.Module, checkpoint: dict[str, Any], folder: Path, target: Path) -> list[str]:
    """Write what it takes to use the model without vml; returns the file names."""
    target.mkdir(parents=True, exist_ok=True)
    written = ["weights.pt", CONFIG_FILE, "labels.json", "preprocess.json"]
    torch.save(model.state_dict(), target / "weights.pt")
    shutil.copyfile(folder / CONFIG_FILE, target / CONFIG_FILE)
    (target / "labels.json").write_text(json.dumps(checkpoint["classes"], indent=2))
    states = {k: v.tolist() for k, v in checkpoint["preprocess_state"].items()}
    (target / "preprocess.json").write_text(
        json.dumps(
            {"ops": checkpoint["preprocess"], "state": states, "features": checkpoint["features"]}, indent=2
        )
    )
    example = torch.zeros((2, *checkpoint["input_shape"]))
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, target / "model.pt2")
        written.append("model.pt2")
    except Exception as exc:  # not every model can be exported; the weights still are
        (target / "EXPORT-FAILED.txt").write_text(f"torch.export could not trace this model: {exc}\n")
        written.append("EXPORT-FAILED.txt")
    return [os.path.join(target, name) for name in written]
