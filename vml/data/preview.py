"""Previews of prepared data, as the model will see it: images as PNG, tables as CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from vml.data.prepare import SPLITS, PreparedData


def write_previews(
    data: PreparedData, directory: Path, per_split: int, splits: tuple[str, ...] = SPLITS
) -> dict[str, int]:
    """Write up to ``per_split`` samples of each of ``splits`` under ``directory``;
    returns how many were written per split. Images go to ``<split>/<class>/<n>.png``,
    rescaled to the full grey/colour range; tables to ``<split>.csv``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in splits:
        x, y = data.x(split)[:per_split], data.y(split)[:per_split]
        if x.ndim == 4:
            _write_images(directory / split, x, y, data.classes)
        else:
            _write_table(directory / f"{split}.csv", x, y, data.classes, data.features)
        written[split] = len(y)
    return written


def _write_images(folder: Path, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> None:
    from PIL import Image

    for n, (image, label) in enumerate(zip(x, y, strict=True)):
        target = folder / classes[label] if classes else folder
        target.mkdir(parents=True, exist_ok=True)
        pixels = image.transpose(1, 2, 0)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
        array = (scaled * 255).round().astype(np.uint8)
        if array.shape[2] == 1:
            Image.fromarray(array[:, :, 0], mode="L").save(target / f"{n}.png")
        else:
            Image.fromarray(array[:, :, :3], mode="RGB").save(target / f"{n}.png")


def _write_table(
    path: Path, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...], features: tuple[str, ...] | None
) -> None:
    names = features or [f"x{i}" for i in range(x.shape[1])]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "label"])
        for row, label in zip(x.tolist(), y.tolist(), strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), classes[label] if classes else f"{label:.6g}"])
