"""Using a trained run: load its best weights, prepare new inputs the way training
did, evaluate, predict and export."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import operator
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np
import torch

from vml.atomic import fsync_dir, shared_mode
from vml.config import IMAGE_PATTERNS, read_user_text
from vml.data.image_source import decode, picture
from vml.data.prepare import stack_images
from vml.errors import UsageError, disk_full, is_disk_full
from vml.models import get_model
from vml.paths import BEST, CONFIG_FILE
from vml.preprocess import OPS, ScalerOp, apply_image_ops
from vml.train.checkpoint import TorchWriter, load_checkpoint, tensor_bytes
from vml.train.evaluation import keep_evaluation, predict_split
from vml.train.loop import Tensors, loss_function

IMAGE_SUFFIXES = {pattern.rsplit(".", 1)[1].lower() for pattern in IMAGE_PATTERNS}
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger values would be inf to the model


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


class InputError(UsageError):
    """A bad input to predict on, one line like any ``UsageError``; ``where`` says where
    it is for a caller that points at the field (``ml serve``'s 422: ``("rows", 0,
    "pixel_0_0")``, ``("files", "a.png")``)."""

    def __init__(self, message: str, where: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.where = where


def takes_images(checkpoint: dict[str, Any]) -> bool:
    """Whether the run was trained on images (else on table rows)."""
    return checkpoint["input_type"] == "labeled-image" or len(checkpoint["input_shape"]) == 3


def is_image_name(name: str) -> bool:
    """Whether a file name has an image suffix (.png, .jpg, ...)."""
    return Path(name).suffix.lower().lstrip(".") in IMAGE_SUFFIXES


def read_inputs(files: list[Path], checkpoint: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Image files, or the rows of CSV files, prepared as in training: image ops in
    their val/test form, then the scalers with the statistics fitted in training."""
    images = takes_images(checkpoint)
    for path in files:
        if path.is_dir():
            pattern = "*.png" if images else "*.csv"
            raise UsageError(f"{path} is a directory (pass its files, e.g. {path / pattern})")
        if not path.is_file():
            raise UsageError(f"no such file: {path} (check the path)")
        check_kind(str(path), is_image_name(str(path)), checkpoint)
    if images:
        return image_inputs([(str(path), decode(path)) for path in files], checkpoint)
    rows: list[list[float]] = []
    names: list[str] = []
    for path in files:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            try:
                _add_csv_rows(handle, str(path), checkpoint["features"], rows, names)
            except UnicodeDecodeError:  # read again to say where: the csv module does not
                read_user_text(path, str(path), fix="pass a CSV file saved as UTF-8")
                raise
    return table_inputs(rows, names, checkpoint)


def check_kind(name: str, image: bool, checkpoint: dict[str, Any]) -> None:
    """Refuse an input of the other kind: an image for a run trained on table rows, or
    a table for one trained on images."""
    if image == takes_images(checkpoint):
        return
    raise InputError(
        f"{name} is an image; this run was trained on table rows (pass CSV files with its columns)"
        if image
        else f"{name} is not an image; this run was trained on images (pass .png, .jpg, ...)",
        ("files", name),
    )


def csv_inputs(files: list[tuple[str, bytes]], checkpoint: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The rows of CSV files given as (name, bytes), as ``read_inputs`` reads files."""
    rows: list[list[float]] = []
    names: list[str] = []
    for name, data in files:
        check_kind(name, False, checkpoint)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - data.rfind(b"\n", 0, exc.start)
            raise InputError(
                f"{name}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x}; send CSV saved as UTF-8)",
                ("files", name),
            ) from None
        _add_csv_rows(io.StringIO(text, newline=""), name, checkpoint["features"], rows, names)
    return table_inputs(rows, names, checkpoint)


def row_inputs(rows: list[Any], checkpoint: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Rows given as mappings of column to number (JSON's ``{"rows": [...]}``); other
    keys (the label, an id) are left out, as a CSV file's other columns are."""
    if takes_images(checkpoint):
        raise InputError(
            "this run was trained on images, not table rows (send the images as files)", ("rows",)
        )
    names = [f"rows[{i}]" for i in range(len(rows))]
    x = _plain_numbers(rows, checkpoint["features"])
    if x is None:  # a string, a missing column, ...: checked value by value, said where
        x = np.asarray([_row_values(index, row, checkpoint["features"]) for index, row in enumerate(rows)])
    return table_inputs(x, names, checkpoint)


def _plain_numbers(rows: list[Any], features: list[str]) -> np.ndarray | None:
    """The rows' features when every value is a finite JSON number, else None. The fast
    path: picked out in C (itemgetter, map), 64 columns of 1,000 rows in about 5 ms
    where checking each value in Python took 150 ms (cProfile, bench_serve.py)."""
    getter = operator.itemgetter(*features)
    try:
        values = [getter(row) for row in rows]
    except (KeyError, TypeError, IndexError):
        return None
    if len(features) == 1:
        values = [(value,) for value in values]
    if not set(map(type, itertools.chain.from_iterable(values))) <= {int, float}:
        return None  # bools, strings, None, nested values: the slow path says which
    try:
        x = np.array(values, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    return x.astype(np.float32) if np.isfinite(x).all() else None


def _row_values(index: int, row: Any, features: list[str]) -> list[float]:
    """Row ``index``'s features as numbers, or ``InputError`` naming the column."""
    if not isinstance(row, dict):
        raise InputError(
            f"row {index} is {type(row).__name__}, not an object of column: number", ("rows", index)
        )
    missing = [f for f in features if f not in row]
    if missing:
        raise InputError(
            f"row {index} lacks the column(s) {_listed(missing)} the run was trained on",
            ("rows", index, missing[0]),
        )
    values = []
    for feature in features:
        try:
            values.append(_number(row[feature]))
        except (ValueError, OverflowError):
            raise InputError(
                f"row {index}, column {feature!r}: {row[feature]!r} is not a number",
                ("rows", index, feature),
            ) from None
    return values


def image_bytes_inputs(
    files: list[tuple[str, bytes]], checkpoint: dict[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """Images given as (name, bytes), as ``read_inputs`` reads image files."""
    for name, _ in files:
        check_kind(name, True, checkpoint)
    return image_inputs([(name, decode_bytes(name, data)) for name, data in files], checkpoint)


def decode_bytes(name: str, data: bytes) -> np.ndarray:
    """An image's bytes as ``vml.data.image_source.decode`` reads its file: a
    (height, width, channels) float32 array in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return picture(image)
    except UnidentifiedImageError:
        what = f"not an image Pillow can read ({len(data)} bytes)" if data else "the file is empty"
        raise InputError(f"unreadable image {name}: {what}", ("files", name)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable image {name}: {exc}", ("files", name)) from None


def image_inputs(
    pictures: list[tuple[str, np.ndarray]], checkpoint: dict[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """Decoded images (name, (height, width, channels) array) through the run's image
    ops in their val/test form, checked against its input size, then scaled."""
    names = [name for name, _ in pictures]
    prepared, _ = apply_image_ops(
        tuple(checkpoint["preprocess"]),
        [picture for _, picture in pictures],
        np.zeros(len(pictures)),
        np.random.default_rng(0),
        train=False,
    )
    expected = tuple(checkpoint["input_shape"])
    for name, image in zip(names, prepared, strict=True):
        shape = (image.shape[2], *image.shape[:2])  # (height, width, channels) -> as trained
        if shape != expected:
            raise InputError(
                f"{name} is {_image_size(shape)} after the run's preprocess ops, but the run was "
                f"trained on {_image_size(expected)} images (pass images like its training data)",
                ("files", name),
            )
    return _checked(stack_images(prepared, tuple(names)), names, checkpoint)


def table_inputs(
    rows: list[list[float]] | np.ndarray, names: list[str], checkpoint: dict[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """Rows of the run's feature values, in its column order, scaled as in training."""
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(checkpoint["features"]))
    return _checked(x, names, checkpoint)


def _checked(x: np.ndarray, names: list[str], checkpoint: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    if tuple(x.shape[1:]) != tuple(checkpoint["input_shape"]):
        raise InputError(
            f"the inputs have shape {tuple(x.shape[1:])} but the run was trained on {tuple(checkpoint['input_shape'])}"
        )
    return scale(x, checkpoint), names


def _number(value: Any) -> float:
    """A JSON value as a finite float (in float32 too): a number, or a string CSV would
    read as one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise ValueError(value)
    return number


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{', '.join(names[:5])}{more}"


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


def _add_csv_rows(
    handle: TextIO, name: str, features: list[str], rows: list[list[float]], names: list[str]
) -> None:
    """Append each data row's values of ``features`` (the run's columns) to ``rows``
    and ``NAME:LINE`` to ``names``."""
    before = len(rows)
    for line, row in _read_rows(handle, name, features):
        rows.append(row)
        names.append(f"{name}:{line}")
    if len(rows) == before:
        raise InputError(f"{name} has a header but no rows to predict (add rows)", ("files", name))


def _read_rows(handle: TextIO, name: str, features: list[str]) -> Iterator[tuple[int, list[float]]]:
    reader = csv.reader(handle)
    header = [column.strip() for column in next(reader, [])]
    if not header:
        raise InputError(
            f"{name} is empty (it needs a header row with the run's columns, then rows)", ("files", name)
        )
    missing = [f for f in features if f not in header]
    if missing:
        raise InputError(
            f"{name} lacks the column(s) {_listed(missing)} the run was trained on "
            "(its header must name them, as the training data's did)",
            ("files", name, missing[0]),
        )
    columns = [header.index(f) for f in features]
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(
                f"{name} line {line}: {len(row)} values but the header has {len(header)} "
                "(fix the row or the header)",
                ("files", name, f"line {line}"),
            )
        values = []
        for column in columns:
            try:
                values.append(float(row[column]))
            except ValueError:
                values.append(math.nan)
            if not math.isfinite(values[-1]):
                raise InputError(
                    f"{name} line {line}, column {header[column]!r}: {row[column]!r} is not a "
                    "number (fix the value; predict needs every column the run was trained on)",
                    ("files", name, f"line {line}", header[column]),
                )
        yield line, values


@torch.inference_mode()
def predict(
    model: torch.nn.Module, checkpoint: dict[str, Any], x: np.ndarray, names: list[str], top: int
) -> list[dict]:
    """The top ``top`` classes with probabilities per input (or the value, for a
    regression)."""
    out = model(torch.from_numpy(x))
    classes = checkpoint["classes"]
    if not classes:
        return [
            {"input": name, "value": value}
            for name, value in zip(names, out.reshape(len(names)).tolist(), strict=True)
        ]
    # The whole batch at once, then plain lists: a softmax and topk per row cost 1,000
    # torch calls for 1,000 rows (half the time of a 1,000-row request, cProfile).
    values, indices = torch.softmax(out, dim=1).topk(min(top, len(classes)), dim=1)
    return [
        {
            "input": name,
            "predictions": [
                {"label": classes[i], "probability": p} for p, i in zip(row_p, row_i, strict=True)
            ],
        }
        for name, row_p, row_i in zip(names, values.tolist(), indices.tolist(), strict=True)
    ]


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
