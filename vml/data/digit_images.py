"""The shipped digits as PNG class folders: what ``ml new --template images`` writes,
so the repository keeps one copy of the data (the CSV) rather than 1797 image files."""

from __future__ import annotations

import csv
import io
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np


def write_digit_images(csv_file: Traversable | Path, folder: Path) -> int:
    """Each row of the digits CSV (64 pixel counts 0..16, then the label) as an 8x8 grey
    PNG ``folder/<label>/<row>.png`` (row numbers from 0, four digits); returns how many.
    The same CSV gives the same bytes."""
    from PIL import Image

    rows = list(csv.reader(io.StringIO(csv_file.read_text(encoding="utf-8"), newline="")))[1:]
    values = np.array([row[:64] for row in rows if row], dtype=np.int64)
    labels = [row[64] for row in rows if row]
    # 0..16 onto the full grey range: 16 becomes 255.
    pixels = (values * 255 // 16).astype(np.uint8).reshape(-1, 8, 8)
    for label in sorted(set(labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        Image.fromarray(image).save(folder / label / f"{i:04d}.png")  # uint8 2-D: grey ("L")
    return len(labels)
