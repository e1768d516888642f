"""Turn the project's data into train/val/test arrays, through the fingerprint cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vml.config import DataConfig, ProjectConfig, Split
from vml.data.cache import CacheStore
from vml.data.csv_source import read_csv
from vml.data.fingerprint import StatCache, fingerprint
from vml.data.image_source import CLASSES_FILE, ImageListing, list_images, read_images
from vml.data.npz_source import read_npz
from vml.data.source import (
    Source,
    class_indices,
    class_names,
    require_classes,
    require_discrete,
    targets,
)
from vml.data.split import split_indices
from vml.errors import UsageError
from vml.preprocess import SPLITS, apply_image_ops, fit_and_apply, image_ops

# Bump when the data code changes what it produces, so old entries are not reused.
DATA_CODE_VERSION = 2

# The cache modes that keep only the decoded input (VergeML's): the split and the
# preprocessing run again on every use, so a change to them reuses the decoded input.
INPUT_CACHE_MODES = ("mem-in", "disk-in")

# Cache mode `mem`: prepared data kept for the life of this process, never written.
_MEMORY: dict[str, PreparedData] = {}
# Cache mode `mem-in`: decoded inputs kept for the life of this process, never written.
_INPUTS: dict[str, Source] = {}


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
    classes; ``regression`` keeps it as numbers). Cache modes ``mem-in`` and ``disk-in``
    keep only the decoded input, and split and preprocess it on every call. With
    ``expect``, a different fingerprint raises ``DataChanged`` before anything is read
    or written."""
    data = project.data
    for note in data.notes:
        say(f"data: note: {note}")
    shown = os.path.relpath(data.path, project.root)
    parts, main, stats = _fingerprint_parts(project, seed, task)
    key = fingerprint(parts)
    if expect is not None and key != expect:
        raise DataChanged(expect, key)
    store = CacheStore(project.cache_dir)
    on_disk = data.cache in ("auto", "disk")
    if on_disk or data.cache == "disk-in":
        stats.save()
    if on_disk:
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

    reader = _Reader(data, project.root, stats, store, say)
    arrays, classes, features = _build(data, main, reader, seed, shown, task, say)
    sizes = ", ".join(f"{len(arrays[f'y_{s}'])} {s}" for s in SPLITS)
    prepared = PreparedData(arrays, classes, key, False, features)
    if on_disk:
        meta = {"source": shown, "classes": list(classes), "features": list(features or []), "parts": parts}
        store.save(key, arrays, meta)
        say(f"data: prepared {shown} ({sizes}) -> .cache/{key}")
    elif data.cache == "mem":
        _MEMORY[key] = prepared
        say(f"data: prepared {shown} ({sizes}) in memory")
    elif data.cache in INPUT_CACHE_MODES:
        say(f"data: prepared {shown} ({sizes}); only the decoded input is cached ({data.cache})")
    else:
        say(f"data: prepared {shown} ({sizes}); cache is off")
    return prepared


def data_fingerprint(project: ProjectConfig, seed: int, task: str = "classification") -> str:
    """The fingerprint ``prepare_data`` would give, from the files' hashes (kept in the
    stat cache) without reading or building the data."""
    return fingerprint(_fingerprint_parts(project, seed, task)[0])


@dataclass(frozen=True)
class _Input:
    """One place the source reads: the files its data depends on, and for images
    what to decode."""

    location: Path
    files: list[Path]
    images: ImageListing | None = None


def _fingerprint_parts(
    project: ProjectConfig, seed: int, task: str
) -> tuple[dict[str, Any], _Input, StatCache]:
    """What the fingerprint is made of, the main input and the stat cache."""
    data = project.data
    stats = StatCache(project.cache_dir)
    split_paths = tuple(s.path for s in (data.val_split, data.test_split) if s.path is not None)
    main = _input(data, data.path, exclude=split_paths)
    parts = {
        "code": DATA_CODE_VERSION,
        "input": {"type": data.input.type, **data.input.options()},
        "content": _content(main.files, project.root, stats),
        "splits": {
            name: _split_part(split, data, project.root, stats) for name, split in _named_splits(data)
        },
        "seed": seed,
        "preprocess": list(data.preprocess),
        "task": task,
    }
    return parts, main, stats


def _named_splits(data: DataConfig) -> tuple[tuple[str, Split], ...]:
    return (("val", data.val_split), ("test", data.test_split))


def _input(data: DataConfig, location: Path, exclude: tuple[Path, ...] = ()) -> _Input:
    """The source at ``location`` (checked to exist) and the files it reads."""
    shown = os.path.relpath(location)
    if data.input.type != "labeled-image":
        if not location.is_file():
            raise UsageError(
                f"data file {shown} not found (check data.input.file and samples-dir in vergeml.yaml)"
            )
        return _Input(location, [location])
    if not location.is_dir():
        raise UsageError(f"image folder {shown} not found (check samples-dir in vergeml.yaml)")
    listing = list_images(location, data.input.patterns, exclude)
    return _Input(location, listing.content_files, listing)


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
        "content": _content(_input(data, split.path).files, root, stats),
    }


def _decode(data: DataConfig, source: _Input) -> Source:
    if data.input.type == "csv":
        return read_csv(source.location, data.input)
    if data.input.type == "npz":
        return read_npz(source.location, data.input)
    assert source.images is not None
    return read_images(source.images)


class _Reader:
    """Reads a source, through the input cache in modes ``mem-in`` and ``disk-in``:
    the decoded samples, before any split or preprocessing, keyed by the input's
    options and content."""

    def __init__(
        self, data: DataConfig, root: Path, stats: StatCache, store: CacheStore, say: Callable[[str], None]
    ) -> None:
        self.data, self.root, self.stats, self.store, self.say = data, root, stats, store, say

    def __call__(self, source: _Input) -> Source:
        mode = self.data.cache
        if mode not in INPUT_CACHE_MODES:
            return _decode(self.data, source)
        shown = os.path.relpath(source.location, self.root)
        key = fingerprint(
            {
                "code": DATA_CODE_VERSION,
                "kind": "input",
                "input": {"type": self.data.input.type, **self.data.input.options()},
                "location": shown,
                "content": _content(source.files, self.root, self.stats),
            }
        )
        if mode == "mem-in":
            if key in _INPUTS:
                self.say(f"data: reusing decoded input in memory ({shown} unchanged)")
            else:
                _INPUTS[key] = _decode(self.data, source)
            # A copy: the kept input must not change with what the split and ops do to it.
            kept = _INPUTS[key]
            x = [image.copy() for image in kept.x] if kept.is_images else np.array(kept.x)
            return replace(kept, x=x)
        cached = self.store.load(key)
        if cached is not None:
            self.store.touch(key)
            self.say(f"data: reusing decoded input .cache/{key} ({shown} unchanged)")
            return _source_from_arrays(*cached, self.root)
        read = _decode(self.data, source)
        arrays, meta = _source_to_arrays(read, self.root)
        self.store.save(key, arrays, {"source": f"{shown} (input)", **meta})
        self.say(f"data: decoded {shown} -> .cache/{key} (the input only)")
        return read


def _source_to_arrays(source: Source, root: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A source as arrays for a cache entry (images flattened into one array, with
    their shapes) and the manifest's part."""
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(source.labels).astype(str)}
    if source.is_images:
        images = source.x
        arrays["pixels"] = (
            np.concatenate([image.ravel() for image in images]) if images else np.zeros(0, np.float32)
        )
        arrays["shapes"] = np.array([image.shape for image in images], dtype=np.int64).reshape(-1, 3)
    else:
        arrays["x"] = np.asarray(source.x)
    if source.fixed is not None:
        arrays["fixed"] = np.asarray(source.fixed).astype(str)
    meta = {
        "features": list(source.features) if source.features else None,
        "names": [os.path.relpath(os.path.abspath(n), root) for n in source.names] if source.names else None,
        "classes": list(source.classes) if source.classes is not None else None,
    }
    return arrays, meta


def _source_from_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any], root: Path) -> Source:
    if "pixels" in arrays:
        pixels = np.array(arrays["pixels"])  # one writable copy; the images are views of it
        sizes = np.prod(arrays["shapes"], axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        x: np.ndarray | list[np.ndarray] = [
            pixels[start : start + size].reshape(shape)
            for start, size, shape in zip(
                starts.tolist(), sizes.tolist(), arrays["shapes"].tolist(), strict=True
            )
        ]
    else:
        x = np.array(arrays["x"])
    names = meta.get("names")
    features, classes = meta.get("features"), meta.get("classes")
    return Source(
        x=x,
        labels=np.array(arrays["labels"]),
        features=tuple(features) if features else None,
        names=tuple(os.path.relpath(root / n) for n in names) if names else None,
        classes=tuple(classes) if classes is not None else None,
        fixed=np.array(arrays["fixed"]) if "fixed" in arrays else None,
    )


def _build(
    data: DataConfig,
    main_input: _Input,
    read: Callable[[_Input], Source],
    seed: int,
    shown: str,
    task: str,
    say: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], tuple[str, ...], tuple[str, ...] | None]:
    main = read(main_input)
    given = {
        name: read(_input(data, split.path)) for name, split in _named_splits(data) if split.path is not None
    }
    if task == "regression":
        classes: tuple[str, ...] = ()
        strata = np.zeros(len(main.labels), np.int64)  # one stratum: a plain seeded split
    else:
        classes = _classes(main, given, shown)
        require_classes(classes, shown)
        require_discrete(classes, shown)
        strata = class_indices(main.labels, classes)
    index = _split(main, strata, data, seed, given, say)
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
                    data.preprocess, source.x, ys[name], rng, train=name == "train", split=name
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


def _classes(main: Source, given: dict[str, Source], shown: str) -> tuple[str, ...]:
    """The class order: the label list's (``labels.txt``), or sorted over all sources."""
    if main.classes is None:
        return class_names(main.labels, *(s.labels for s in given.values()))
    known = set(main.classes)
    for name, source in given.items():
        stray = next((label for label in source.labels.tolist() if label not in known), None)
        if stray is not None:
            raise UsageError(
                f"the {name} split has class {stray!r}, which is not in {shown}/labels.txt (add it there)"
            )
    return main.classes


def _split(
    main: Source,
    strata: np.ndarray,
    data: DataConfig,
    seed: int,
    given: dict[str, Source],
    say: Callable[[str], None],
) -> dict[str, np.ndarray]:
    """Each split's indices into ``main``: the seeded, stratified split, except for
    the samples whose split ``classes.json`` fixes. A split that it fixes for any file
    takes no random share (VergeML's rule)."""
    if main.fixed is None or not (main.fixed != "").any():
        return split_indices(strata, data.val_split, data.test_split, seed)
    fixed = main.fixed
    shares = {"val": data.val_split, "test": data.test_split}
    for name in ("val", "test"):
        if not (fixed == name).any():
            continue
        if name in given:
            raise UsageError(
                f"{CLASSES_FILE} fixes the {name} split, and {name}-split is a path (remove one of the two)"
            )
        shares[name] = Split("count", 0)
    for name, other in (("val", "test"), ("test", "val")):
        if (
            (fixed == other).any()
            and not (fixed == name).any()
            and shares[name].size(100)
            and name not in given
        ):
            say(
                f"data: {CLASSES_FILE} fixes the {other} split only; {name} takes {name}-split "
                f"({shares[name]}) of the files it leaves free (VergeML would leave {name} empty; "
                f"set {name}-split: 0 for that)"
            )
    free = np.flatnonzero(fixed == "")
    if len(free):
        drawn = split_indices(strata[free], shares["val"], shares["test"], seed)
    else:
        drawn = {name: np.zeros(0, np.int64) for name in SPLITS}
    rng = np.random.default_rng(seed)
    return {
        name: rng.permutation(np.concatenate([np.flatnonzero(fixed == name), free[drawn[name]]]))
        for name in SPLITS
    }


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
