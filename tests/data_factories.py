"""Builders for hand-written projects over the digits data: image folders, ``.npz``
files and CSVs, plus small helpers to prepare their data the way ``ml train`` does."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from vml import api
from vml.data.prepare import PreparedData, prepare_data

DIGITS_CSV = Path(__file__).resolve().parents[1] / "templates" / "default" / "data" / "digits.csv"
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SEED = 42


@cache
def _digits() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    with DIGITS_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))
    values = np.array(rows[1:], dtype=np.int64)
    return tuple(rows[0][:-1]), values[:, :-1], values[:, -1]


def digits(per_class: int | None = None, skip: int = 0) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The digits as (feature names, (N, 64) pixel values 0..16, (N,) labels 0..9): the
    first ``per_class`` rows of each class after ``skip`` of that class, in file order."""
    header, x, y = _digits()
    if per_class is None and skip == 0:
        return header, x.copy(), y.copy()
    keep = np.zeros(len(y), dtype=bool)
    for label in range(10):
        rows = np.flatnonzero(y == label)
        stop = None if per_class is None else skip + per_class
        keep[rows[skip:stop]] = True
    return header, x[keep], y[keep]


def write_spec(root: Path, spec: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "vergeml.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def update_spec(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Load vergeml.yaml, let ``change`` edit the mapping, write it back."""
    spec = yaml.safe_load((root / "vergeml.yaml").read_text())
    change(spec)
    write_spec(root, spec)


def set_preprocess(root: Path, ops: list[dict[str, Any]]) -> None:
    def change(spec: dict[str, Any]) -> None:
        spec.setdefault("data", {})["preprocess"] = ops

    update_spec(root, change)


def digit_png(pixels: np.ndarray, path: Path, rgb: bool = False) -> Path:
    """One row of 64 values 0..16 as an 8x8 PNG (grey, or the grey repeated as RGB with a
    colour tint so the channels differ)."""
    grey = (np.asarray(pixels, dtype=float).reshape(8, 8) * 255 / 16).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb:
        colour = np.stack([grey, grey // 2, 255 - grey], axis=2).astype(np.uint8)
        Image.fromarray(colour, mode="RGB").save(path)
    else:
        Image.fromarray(grey, mode="L").save(path)
    return path


def write_images(
    folder: Path, x: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None, rgb_every: int = 0
) -> list[Path]:
    """``folder/<class>/<i>.png`` for each row; every ``rgb_every``-th image in colour."""
    written = []
    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        cls = names[label] if names else str(label)
        rgb = bool(rgb_every) and i % rgb_every == 0
        written.append(digit_png(pixels, folder / cls / f"{i}.png", rgb=rgb))
    return written


def image_project(
    root: Path,
    per_class: int = 40,
    names: Sequence[str] | None = None,
    preprocess: list[dict[str, Any]] | None = None,
    rgb_every: int = 0,
    **top: Any,
) -> Path:
    """A labeled-image project: digits as 8x8 PNGs in ``samples/<class>/``."""
    _, x, y = digits(per_class)
    write_images(root / "samples", x, y, names, rgb_every)
    data: dict[str, Any] = {"input": {"type": "labeled-image"}}
    if preprocess:
        data["preprocess"] = preprocess
    return write_spec(root, {"model": "mlp", "samples-dir": "samples", **top, "data": data})


def npz_project(
    root: Path, x: np.ndarray, y: np.ndarray, x_key: str = "x", y_key: str = "y", **top: Any
) -> Path:
    (root / "samples").mkdir(parents=True)
    np.savez(root / "samples" / "digits.npz", **{x_key: x, y_key: y})
    source: dict[str, Any] = {"type": "npz", "file": "digits.npz"}
    if x_key != "x":
        source["x"] = x_key
    if y_key != "y":
        source["y"] = y_key
    return write_spec(root, {"model": "mlp", "samples-dir": "samples", **top, "data": {"input": source}})


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def digit_rows(x: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> list[list[Any]]:
    return [[*map(int, row), names[label] if names else int(label)] for row, label in zip(x, y, strict=True)]


def csv_project(
    root: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    source: dict[str, Any] | None = None,
    preprocess: list[dict[str, Any]] | None = None,
    **top: Any,
) -> Path:
    """A CSV project reading ``samples/digits.csv``."""
    write_csv(root / "samples" / "digits.csv", header, rows)
    data: dict[str, Any] = {
        "input": {"type": "csv", "file": "digits.csv", "target": "label", **(source or {})}
    }
    if preprocess:
        data["preprocess"] = preprocess
    return write_spec(root, {"model": "mlp", "samples-dir": "samples", **top, "data": data})


def digits_csv_project(
    tmp: Path, edit: Callable[[list[list[Any]]], None] | None = None, per_class: int = 10, **top: Any
) -> Path:
    """A CSV project of ``per_class`` digits a class at ``tmp/p``, its rows changed by
    ``edit`` first (to make them wrong in some way)."""
    header, x, y = digits(per_class)
    rows = digit_rows(x, y)
    if edit:
        edit(rows)
    return csv_project(tmp / "p", [*header, "label"], rows, **top)


def named_digits_project(root: Path, per_class: int | None = None, **kwargs: Any) -> Path:
    """The digits as a CSV whose labels are the names 'zero'..'nine'."""
    header, x, y = digits(per_class)
    return csv_project(root, [*header, "label"], digit_rows(x, y, NAMES), **kwargs)


def prepare(root: Path, lines: list[str] | None = None) -> PreparedData:
    """The project's data prepared as ``ml train`` would (seed 42, classification)."""
    say = lines.append if lines is not None else (lambda _: None)
    return prepare_data(api.Project(root).config, seed=SEED, say=say)


def copy_project(root: Path, target: Path) -> Path:
    """A copy of the project without its cache or runs."""
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(".cache", "trainings"))
    return target


def cache_entries(root: Path) -> list[str]:
    cache_dir = root / ".cache"
    if not cache_dir.is_dir():
        return []
    return sorted(p.name for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
