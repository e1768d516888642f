"""The labeled-image source, decoded with Pillow. Two layouts, as VergeML reads them:

- class folders: ``samples-dir/<class>/<image>``;
- a label list: ``samples-dir/labels.txt`` (one label a line, in output order) and
  ``samples-dir/classes.json``, ``{"files": {"a/1.png": ["cat"], ...}}`` (paths relative
  to samples-dir), with an optional ``"split": {"a/1.png": "val", ...}`` that fixes those
  files' split. ``classes.json`` decides: where it exists, the folders do not count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vml.config import IMAGE_PATTERNS
from vml.data.source import Source
from vml.errors import UsageError
from vml.preprocess import SPLITS

LABELS_FILE = "labels.txt"
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class ImageListing:
    """The images a labeled-image source reads. With a label list (``labels.txt`` and
    ``classes.json``) it also holds each image's label, the classes in order, each
    image's fixed split (``""`` for none) and the two files (they are part of the data)."""

    directory: Path
    files: list[Path]
    labels: list[str] | None = None
    classes: tuple[str, ...] | None = None
    fixed: list[str] | None = None
    lists: tuple[Path, ...] = ()

    @property
    def content_files(self) -> list[Path]:
        """Every file whose bytes the prepared data depends on."""
        return [*self.files, *self.lists]


def list_images(directory: Path, patterns: tuple[str, ...], exclude: tuple[Path, ...] = ()) -> ImageListing:
    """The images under ``directory``: those ``classes.json`` lists, or else the
    files matching ``patterns`` (skipping ``exclude``), sorted."""
    if (directory / CLASSES_FILE).is_file():
        return _read_label_list(directory)
    found = {p for pattern in patterns for p in directory.glob(pattern) if p.is_file()}
    files = sorted(p for p in found if not any(p.is_relative_to(e) for e in exclude))
    if patterns == IMAGE_PATTERNS:  # (chosen patterns may leave folders out on purpose)
        _refuse_empty_class(directory, files, exclude)
    return ImageListing(directory, files)


def _refuse_empty_class(directory: Path, files: list[Path], exclude: tuple[Path, ...]) -> None:
    """A class folder without images would be a class training never sees."""
    if not files:
        return  # read_images says no images were found at all
    held = {p.relative_to(directory).parts[0] for p in files}
    for folder in sorted(directory.iterdir()):
        if (
            folder.is_dir()
            and not folder.name.startswith(".")
            and folder.name not in held
            and not any(folder.is_relative_to(e) or e.is_relative_to(folder) for e in exclude)
        ):
            shown = os.path.relpath(folder)
            raise UsageError(
                f"class folder {shown} has no images (add .png or .jpg files to it, or remove it)"
            )


def read_images(listing: ImageListing) -> Source:
    """Decode the listed images into float arrays in [0, 1] with their labels: the
    first-level folder, or the label ``classes.json`` gives."""
    directory = listing.directory
    shown = os.path.relpath(directory)
    if not listing.files and listing.lists:
        raise UsageError(
            f'{shown}/{CLASSES_FILE} lists no files (add them, e.g. "files": {{"cat/1.png": ["cat"]}})'
        )
    if not listing.files:
        raise UsageError(
            f"no images found in {shown} (put them in {shown}/<class>/, e.g. {shown}/cat/1.png, "
            "or set data.input.input-patterns)"
        )
    labels = listing.labels
    if labels is None:
        labels = []
        for path in listing.files:
            relative = path.relative_to(directory)
            if len(relative.parts) < 2:
                raise UsageError(
                    f"image {os.path.relpath(path)} is not in a class folder (move it to {shown}/<class>/)"
                )
            labels.append(relative.parts[0])
    images = [decode(path) for path in listing.files]
    names = tuple(os.path.relpath(path) for path in listing.files)
    fixed = np.asarray(listing.fixed) if listing.fixed is not None else None
    return Source(x=images, labels=np.asarray(labels), names=names, classes=listing.classes, fixed=fixed)


def decode(path: Path) -> np.ndarray:
    """One image as a (height, width, channels) float32 array in [0, 1]: one channel
    for grey images, three for colour (alpha and palettes are resolved)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return picture(image)
    except UnidentifiedImageError:  # Pillow's message repeats the path, absolute
        size = path.stat().st_size
        what = f"not an image Pillow can read ({size} bytes; " if size else "the file is empty ("
        raise UsageError(
            f"unreadable image {os.path.relpath(path)}: {what}replace or remove the file)"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"unreadable image {os.path.relpath(path)}: {exc} (replace or remove the file)"
        ) from None


def picture(image: Any) -> np.ndarray:
    """An opened PIL image as ``decode`` returns it: (height, width, channels) float32
    in [0, 1]; 16-bit grey is scaled by 65535, other grey stays one channel, the rest RGB."""
    image.load()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return (np.asarray(image, dtype=np.float32) / 65535.0)[:, :, None]
    converted = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
    array = np.asarray(converted, dtype=np.float32) / 255.0
    return array[:, :, None] if array.ndim == 2 else array


def _read_label_list(directory: Path) -> ImageListing:
    """``labels.txt`` and ``classes.json``, checked: every file exists inside
    ``directory``, has one label listed in ``labels.txt``, and a known split."""
    labels_file, classes_file = directory / LABELS_FILE, directory / CLASSES_FILE
    shown = os.path.relpath(classes_file)
    if not labels_file.is_file():
        raise UsageError(
            f"{shown} needs {os.path.relpath(labels_file)} beside it (list the labels there, one a line)"
        )
    classes = tuple(
        line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    if not classes:
        raise UsageError(f"{os.path.relpath(labels_file)} lists no labels (write one label a line)")
    if len(set(classes)) != len(classes):
        twice = next(c for c in classes if classes.count(c) > 1)
        raise UsageError(f"{os.path.relpath(labels_file)} lists {twice!r} twice (keep one)")
    try:
        spec = json.loads(classes_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{shown} is not valid JSON: {exc} (fix the file)") from None
    files = spec.get("files") if isinstance(spec, dict) else None
    if not isinstance(files, dict):
        raise UsageError(
            f'{shown} needs a "files" mapping of image to labels, e.g. {{"files": {{"cat/1.png": ["cat"]}}}}'
        )
    splits = spec.get("split", {}) or {}
    if not isinstance(splits, dict):
        raise UsageError(
            f'{shown}: "split" must map files to train, val or test, e.g. {{"cat/1.png": "val"}}'
        )
    known = set(classes)
    root = directory.resolve()
    paths, labels, fixed = [], [], []
    for name in sorted(files):
        path = directory.joinpath(*name.split("/"))
        if not path.resolve().is_relative_to(root):
            raise UsageError(
                f"{shown}: file {name!r} is outside {os.path.relpath(directory)} (list files inside it)"
            )
        if not path.is_file():
            raise UsageError(
                f"{shown} lists {name!r}, but {os.path.relpath(path)} does not exist "
                "(add the image or remove it from classes.json)"
            )
        label = _one_label(files[name], name, shown)
        if label not in known:
            raise UsageError(
                f"{shown}: label {label!r} of {name!r} is not in {LABELS_FILE} (add it there or fix the label)"
            )
        split = splits.get(name, "")
        if split not in ("", *SPLITS):
            raise UsageError(
                f"{shown}: split {split!r} of {name!r} is not train, val or test (use one of them)"
            )
        paths.append(path)
        labels.append(label)
        fixed.append(split)
    stray = next((name for name in splits if name not in files), None)
    if stray is not None:
        raise UsageError(
            f'{shown}: "split" names {stray!r}, which "files" does not list (add it to files or remove it)'
        )
    return ImageListing(directory, paths, labels, classes, fixed, (labels_file, classes_file))


def _one_label(value: object, name: str, shown: str) -> str:
    """The label of a ``files`` entry: a list of one label (VergeML's form) or a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, list) and len(value) > 1:
        raise UsageError(
            f"{shown}: {name!r} has {len(value)} labels, but vml trains one label an image (keep one)"
        )
    raise UsageError(f'{shown}: {name!r} needs one label, e.g. "{name}": ["cat"]')
