"""Using a trained run: load its best weights, prepare new inputs the way training
did, evaluate, predict and export."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from vml.atomic import fsync_dir, shared_mode
from vml.config import IMAGE_PATTERNS, read_user_text
from vml.data.image_source import decode
from vml.data.prepare import stack_images
from vml.errors import UsageError, disk_full, is_disk_full
from vml.models import get_model
from vml.paths import BEST, CONFIG_FILE
from vml.preprocess import OPS, ScalerOp, apply_image_ops
from vml.train.checkpoint import TorchWriter, load_checkpoint, tensor_bytes
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
    images = checkpoint["input_type"] == "labeled-image" or len(checkpoint["input_shape"]) == 3
    for path in files:
        if path.is_dir():
            pattern = "*.png" if images else "*.csv"
            raise UsageError(f"{path} is a directory (pass its files, e.g. {path / pattern})")
        if not path.is_file():
            raise UsageError(f"no such file: {path} (check the path)")
        if images != (path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES):
            raise UsageError(
                f"{path} is not an image; this run was trained on images (pass .png, .jpg, ...)"
                if images
                else f"{path} is an image; this run was trained on table rows (pass CSV files with its columns)"
            )
    names: list[str] = []
    if images:
        pictures = []
        for path in files:
            pictures.append(decode(path))
            names.append(str(path))
        pictures, _ = apply_image_ops(
            tuple(checkpoint["preprocess"]),
            pictures,
            np.zeros(len(pictures)),
            np.random.default_rng(0),
            train=False,
        )
        expected = tuple(checkpoint["input_shape"])
        for name, picture in zip(names, pictures, strict=True):
            shape = (picture.shape[2], *picture.shape[:2])  # (height, width, channels) -> as trained
            if shape != expected:
                raise UsageError(
                    f"{name} is {_image_size(shape)} after the run's preprocess ops, but the run was "
                    f"trained on {_image_size(expected)} images (pass images like its training data)"
                )
        x = stack_images(pictures, tuple(names))
    else:
        rows = []
        for path in files:
            before = len(rows)
            for line, row in _csv_rows(path, checkpoint["features"]):
                rows.append(row)
                names.append(f"{path}:{line}")
            if len(rows) == before:
                raise UsageError(f"{path} has a header but no rows to predict (add rows)")
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


def _image_size(shape: tuple[int, ...]) -> str:
    """(channels, height, width) as ``8x8 grey`` or ``32x32 with 3 channels``."""
    channels, height, width = shape
    return f"{width}x{height} " + ("grey" if channels == 1 else f"with {channels} channels")


def _csv_rows(path: Path, features: list[str]) -> Iterator[tuple[int, list[float]]]:
    """Each data row's line and its values of ``features`` (the run's columns)."""
    try:
        yield from _read_rows(path, features)
    except UnicodeDecodeError:  # read again to say where: the csv module does not
        read_user_text(path, str(path), fix="pass a CSV file saved as UTF-8")
        raise


def _read_rows(path: Path, features: list[str]) -> Iterator[tuple[int, list[float]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise UsageError(f"{path} is empty (it needs a header row with the run's columns, then rows)")
        missing = [f for f in features if f not in header]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise UsageError(
                f"{path} lacks the column(s) {', '.join(missing[:5])}{more} the run was trained on "
                "(its header must name them, as the training data's did)"
            )
        columns = [header.index(f) for f in features]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise UsageError(
                    f"{path} line {line}: {len(row)} values but the header has {len(header)} "
                    "(fix the row or the header)"
                )
            values = []
            for column in columns:
                try:
                    values.append(float(row[column]))
                except ValueError:
                    values.append(math.nan)
                if not math.isfinite(values[-1]):
                    raise UsageError(
                        f"{path} line {line}, column {header[column]!r}: {row[column]!r} is not a "
                        "number (fix the value; predict needs every column the run was trained on)"
                    )
            yield line, values


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
    """Write what it takes to use the model without vml into ``target`` (a new or empty
    folder); returns the file paths. The files go to a temporary folder beside it that
    becomes ``target`` once all are written: a full disk leaves no half export, and
    raises ``DiskFullError`` naming the file and about what the whole export needs."""
    files = _ExportFiles()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = files.folder = Path(
            tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        )
        weights = model.state_dict()
        files.write("weights.pt", lambda f: TorchWriter(f).save(torch.save, weights), tensor_bytes(weights))
        files.data(CONFIG_FILE, (folder / CONFIG_FILE).read_bytes())
        files.data("labels.json", json.dumps(checkpoint["classes"], indent=2).encode())
        states = {k: v.tolist() for k, v in checkpoint["preprocess_state"].items()}
        preprocess = {"ops": checkpoint["preprocess"], "state": states, "features": checkpoint["features"]}
        files.data("preprocess.json", json.dumps(preprocess, indent=2).encode())
        example = torch.zeros((2, *checkpoint["input_shape"]))
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            # In memory first: its size (the weights and the traced code) is known
            # before it is written, for the disk-full message.
            archive = io.BytesIO()
            torch.export.save(program, archive)
        except Exception as exc:  # not every model can be exported; the weights still are
            files.data("EXPORT-FAILED.txt", f"torch.export could not trace this model: {exc}\n".encode())
        else:
            files.data("model.pt2", archive.getbuffer())
        os.chmod(staging, shared_mode(0o777))
        os.replace(staging, target)  # a folder renamed over an empty one replaces it
    except BaseException as exc:
        if files.folder is not None:
            shutil.rmtree(files.folder, ignore_errors=True)
        if is_disk_full(exc):
            # Named as it would have been, with what the whole export needed so far.
            raise disk_full(target / files.writing, files.size + files.needed) from exc
        raise
    fsync_dir(target.parent)
    return [os.path.join(target, name) for name in files.names]


class _ExportFiles:
    """The files of an export, written into its temporary folder one by one: their
    names, the bytes written, and the file being written with what it should need."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.names: list[str] = []
        self.size = 0
        self.writing = ""
        self.needed = 0

    def write(self, name: str, write: Callable[[BinaryIO], Any], needed: int = 0) -> None:
        self.writing, self.needed = name, needed
        with open(self.folder / name, "wb") as handle:
            write(handle)
            handle.flush()
            self.needed = max(needed, handle.tell())
            os.fsync(handle.fileno())
        os.chmod(self.folder / name, shared_mode())
        self.names.append(name)
        self.size += self.needed

    def data(self, name: str, data: bytes | memoryview) -> None:
        self.write(name, lambda f: f.write(data), len(data))
