"""Turn the project's data into train/val/test arrays, through the fingerprint cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vml.config import DataConfig, ProjectConfig, Split
from vml.data.cache import CacheStore
from vml.data.csv_source import read_csv
from vml.data.fingerprint import StatCache, fingerprint
from vml.data.image_source import read_images
from vml.data.npz_source import read_npz
from vml.data.source import (
    Source,
    class_indices,
    class_names,
    image_files,
    require_classes,
    require_discrete,
    targets,
)
from vml.data.split import split_indices
from vml.errors import UsageError
from vml.preprocess import apply_image_ops, fit_and_apply, image_ops

# Bump when the data code changes what it produces, so old entries are not reused.
DATA_CODE_VERSION = 2
SPLITS = ("train", "val", "test")

# Cache mode `mem`: prepared data kept for the life of this process, never written.
_MEMORY: dict[str, PreparedData] = {}


@dataclass(frozen=True)
class PreparedData:
    """Prepared splits ready for training, and where they came from."""

    arrays: dict[str, np.ndarray]
    classes: tuple[str, ...]
    fingerprint: str
    reused: bool
    features: tuple[str, ...] | None = None

    def x(self, split: str) -> np.ndarray:
        return self.arrays[f"x_{split}"]

    def y(self, split: str) -> np.ndarray:
        return self.arrays[f"y_{split}"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x("train").shape[1:])


class DataChanged(Exception):
    """The data or preprocessing no longer gives the fingerprint a run was trained on."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"fingerprint {found}, expected {expected}")
        self.expected, self.found = expected, found


def prepare_data(
    project: ProjectConfig,
    seed: int,
    say: Callable[[str], None] = lambda _: None,
    task: str = "classification",
    expect: str | None = None,
) -> PreparedData:
    """Read, split and preprocess the data, or reuse a cache entry made from the same
    data, options, seed, pipeline and task (``classification`` encodes the target as
    classes; ``regression`` keeps it as numbers). With ``expect``, a different
    fingerprint raises ``DataChanged`` before anything is read or written."""
    data = project.data
    shown = os.path.relpath(data.path, project.root)
    parts, files, stats = _fingerprint_parts(project, seed, task)
    key = fingerprint(parts)
    if expect is not None and key != expect:
        raise DataChanged(expect, key)
    store = CacheStore(project.cache_dir)
    on_disk = data.cache in ("auto", "disk")
    if on_disk:
        stats.save()
        cached = store.load(key)
        if cached is not None:
            arrays, manifest = cached
            store.touch(key)
            say(f"data: reusing cache .cache/{key} (data and preprocessing unchanged)")
            features = manifest.get("features")
            return PreparedData(
                arrays, tuple(manifest["classes"]), key, True, tuple(features) if features else None
            )
        if store.entry_dir(key).exists():
            say(f"data: cache entry .cache/{key} is damaged; rebuilding it")
    elif data.cache == "mem" and key in _MEMORY:
        say("data: reusing prepared data in memory (data and preprocessing unchanged)")
        return _MEMORY[key]

    arrays, classes, features = _build(data, files, seed, shown, task)
    sizes = ", ".join(f"{len(arrays[f'y_{s}'])} {s}" for s in SPLITS)
    prepared = PreparedData(arrays, classes, key, False, features)
    if on_disk:
        meta = {"source": shown, "classes": list(classes), "features": list(features or []), "parts": parts}
        store.save(key, arrays, meta)
        say(f"data: prepared {shown} ({sizes}) -> .cache/{key}")
    elif data.cache == "mem":
        _MEMORY[key] = prepared
        say(f"data: prepared {shown} ({sizes}) in memory")
    else:
        say(f"data: prepared {shown} ({sizes}); cache is off")
    return prepared


def data_fingerprint(project: ProjectConfig, seed: int, task: str = "classification") -> str:
    """The fingerprint ``prepare_data`` would give, from the files' hashes (kept in the
    stat cache) without reading or building the data."""
    return fingerprint(_fingerprint_parts(project, seed, task)[0])


def _fingerprint_parts(
    project: ProjectConfig, seed: int, task: str
) -> tuple[dict[str, Any], list[Path], StatCache]:
    """What the fingerprint is made of, the input files and their stat cache."""
    data = project.data
    stats = StatCache(project.cache_dir)
    split_paths = tuple(s.path for s in (data.val_split, data.test_split) if s.path is not None)
    files = _input_files(data, data.path, exclude=split_paths)
    parts = {
        "code": DATA_CODE_VERSION,
        "input": {"type": data.input.type, **data.input.options()},
        "content": _content(files, project.root, stats),
        "splits": {
            name: _split_part(split, data, project.root, stats) for name, split in _named_splits(data)
        },
        "seed": seed,
        "preprocess": list(data.preprocess),
        "task": task,
    }
    return parts, files, stats


def _named_splits(data: DataConfig) -> tuple[tuple[str, Split], ...]:
    return (("val", data.val_split), ("test", data.test_split))


def _input_files(data: DataConfig, location: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """The files a source at ``location`` reads (checked to exist)."""
    shown = os.path.relpath(location)
    if data.input.type != "labeled-image":
        if not location.is_file():
            raise UsageError(
                f"data file {shown} not found (check data.input.file and samples-dir in vergeml.yaml)"
            )
        return [location]
    if not location.is_dir():
        raise UsageError(f"image folder {shown} not found (check samples-dir in vergeml.yaml)")
    return image_files(location, data.input.patterns, exclude)


def _content(files: list[Path], root: Path, stats: StatCache) -> Any:
    """A digest of the files' contents and names (relative to the project)."""
    if len(files) == 1:
        return stats.content_hash(files[0])
    return fingerprint([(os.path.relpath(f, root), stats.content_hash(f)) for f in files])


def _split_part(split: Split, data: DataConfig, root: Path, stats: StatCache) -> Any:
    if split.path is None:
        return str(split)
    return {
        "path": os.path.relpath(split.path, root),
        "content": _content(_input_files(data, split.path), root, stats),
    }


def _read(data: DataConfig, location: Path, files: list[Path]) -> Source:
    if data.input.type == "csv":
        return read_csv(location, data.input)
    if data.input.type == "npz":
        return read_npz(location, data.input)
    return read_images(location, files)


def _build(
    data: DataConfig, files: list[Path], seed: int, shown: str, task: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...], tuple[str, ...] | None]:
    main = _read(data, data.path, files)
    given = {
        name: _read(data, split.path, _input_files(data, split.path))
        for name, split in _named_splits(data)
        if split.path is not None
    }
    if task == "regression":
        classes: tuple[str, ...] = ()
        # One stratum: a plain seeded split.
        index = split_indices(np.zeros(len(main.labels), np.int64), data.val_split, data.test_split, seed)
    else:
        classes = class_names(main.labels, *(s.labels for s in given.values()))
        require_classes(classes, shown)
        require_discrete(classes, shown)
        index = split_indices(class_indices(main.labels, classes), data.val_split, data.test_split, seed)
    sources = {name: main.take(index[name]) for name in SPLITS if name not in given} | given
    if task == "regression":
        ys = {name: targets(s.labels, shown) for name, s in sources.items()}
    else:
        ys = {name: class_indices(s.labels, classes) for name, s in sources.items()}

    if image_ops(data.preprocess) and not main.is_images:
        raise UsageError(f"{shown} holds a table, but data.preprocess has image ops (remove them)")
    xs = {}
    rng = np.random.default_rng(seed)
    for name in SPLITS:
        source = sources[name]
        if source.is_images:
            try:
                images, ys[name] = apply_image_ops(
                    data.preprocess, source.x, ys[name], rng, train=name == "train"
                )
            except ValueError as exc:
                raise UsageError(f"preprocessing {name} images: {exc}") from None
            xs[name] = stack_images(images, source.names)
        else:
            xs[name] = np.asarray(source.x, dtype=np.float32)
    if data.input.missing == "mean":
        means = np.nan_to_num(np.nanmean(xs["train"], axis=0)) if len(xs["train"]) else 0.0
        xs = {name: np.where(np.isnan(x), means, x).astype(np.float32) for name, x in xs.items()}
    xs, states = fit_and_apply(data.preprocess, xs)
    arrays = {f"x_{s}": xs[s].astype(np.float32) for s in SPLITS}
    arrays |= {f"y_{s}": ys[s] for s in SPLITS}
    arrays |= {f"state.{name}": value for name, value in states.items()}
    return arrays, classes, main.features


def stack_images(images: list[np.ndarray], names: tuple[str, ...] | None) -> np.ndarray:
    """Images of one size as an (N, channels, height, width) array."""
    if not images:
        return np.zeros((0, 1, 1, 1), dtype=np.float32)
    first = images[0].shape
    for i, image in enumerate(images):
        if image.shape != first:
            where = (
                f" ({names[0]} is {_size(first)}, {names[i]} is {_size(image.shape)})"
                if names and i < len(names)
                else ""
            )
            raise UsageError(
                f"images differ in size or channels{where}; add a resize op (e.g. - op: resize, width: 32, "
                "height: 32) and grayscale or rgb"
            )
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}x{shape[2]}"
