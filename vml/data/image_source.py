"""The labeled-image source: ``samples-dir/<class>/<image>``, decoded with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vml.data.source import Source
from vml.errors import UsageError


def read_images(directory: Path, files: list[Path]) -> Source:
    """Decode ``files`` (found under ``directory``) into float arrays in [0, 1], one
    class per first-level folder."""
    shown = os.path.relpath(directory)
    if not files:
        raise UsageError(
            f"no images found in {shown} (put them in {shown}/<class>/, e.g. {shown}/cat/1.png, "
            "or set data.input.input-patterns)"
        )
    labels, images, names = [], [], []
    for path in files:
        relative = path.relative_to(directory)
        if len(relative.parts) < 2:
            raise UsageError(
                f"image {os.path.relpath(path)} is not in a class folder (move it to {shown}/<class>/)"
            )
        labels.append(relative.parts[0])
        images.append(decode(path))
        names.append(os.path.relpath(path))
    return Source(x=images, labels=np.asarray(labels), names=tuple(names))


def decode(path: Path) -> np.ndarray:
    """One image as a (height, width, channels) float32 array in [0, 1]: one channel
    for grey images, three for colour (alpha and palettes are resolved)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32) / 65535.0
                return array[:, :, None]
            converted = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
            array = np.asarray(converted, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UsageError(
            f"unreadable image {os.path.relpath(path)}: {exc} (replace or remove the file)"
        ) from None
    return array[:, :, None] if array.ndim == 2 else array
