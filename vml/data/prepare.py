"""Turn the project's data into train/val/test arrays, through the fingerprint cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vml.config import ProjectConfig
from vml.data.cache import CacheStore
from vml.data.csv_source import read_csv
from vml.data.fingerprint import StatCache, fingerprint
from vml.data.preprocess import fit_and_apply
from vml.data.split import split_indices

# Bump when the data code changes what it produces, so old entries are not reused.
DATA_CODE_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedData:
    """Prepared splits ready for training, and where they came from."""

    arrays: dict[str, np.ndarray]
    classes: tuple[str, ...]
    fingerprint: str
    reused: bool

    def x(self, split: str) -> np.ndarray:
        return self.arrays[f"x_{split}"]

    def y(self, split: str) -> np.ndarray:
        return self.arrays[f"y_{split}"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x("train").shape[1:])


def prepare_data(
    project: ProjectConfig, seed: int, say: Callable[[str], None] = lambda _: None
) -> PreparedData:
    """Parse, split and preprocess the data, or reuse a cache entry made from the
    same data, options, seed and pipeline."""
    data = project.data
    source = data.path
    shown = os.path.relpath(source, project.root)
    stats = StatCache(project.cache_dir)
    if not source.is_file():
        read_csv(source, data.target)  # raises the user-facing "not found" error
    parts = {
        "code": DATA_CODE_VERSION,
        "input": {"type": data.input_type, "file": shown, "target": data.target},
        "content": stats.content_hash(source),
        "splits": {"val": str(data.val_split), "test": str(data.test_split)},
        "seed": seed,
        "preprocess": list(data.preprocess),
    }
    key = fingerprint(parts)
    store = CacheStore(project.cache_dir)
    use_disk = data.cache in ("auto", "disk")
    if use_disk:
        cached = store.load(key)
        if cached is not None:
            arrays, manifest = cached
            stats.save()
            say(f"data: reusing cache .cache/{key} (data and preprocessing unchanged)")
            return PreparedData(arrays, tuple(manifest["classes"]), key, reused=True)

    table = read_csv(source, data.target)
    indices = split_indices(table.y, data.val_split, data.test_split, seed)
    features = {split: table.x[indices[split]] for split in SPLITS}
    features, states = fit_and_apply(data.preprocess, features)
    arrays = {f"x_{s}": features[s].astype(np.float32) for s in SPLITS}
    arrays |= {f"y_{s}": table.y[indices[s]] for s in SPLITS}
    arrays |= {f"state.{name}": value for name, value in states.items()}
    sizes = ", ".join(f"{len(indices[s])} {s}" for s in SPLITS)
    if use_disk:
        meta = {
            "source": shown,
            "classes": list(table.classes),
            "features": list(table.features),
            "parts": parts,
        }
        store.save(key, arrays, meta)
        say(f"data: prepared {shown} ({sizes}) -> .cache/{key}")
    else:
        say(f"data: prepared {shown} ({sizes}); cache is off")
    if use_disk:
        stats.save()
    return PreparedData(arrays, table.classes, key, reused=False)
