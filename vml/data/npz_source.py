"""The NumPy source: an ``.npz`` file with a features array and a labels array."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from vml.config import InputConfig
from vml.data.source import Source
from vml.errors import UsageError


def read_npz(path: Path, options: InputConfig) -> Source:
    """Arrays ``options.x`` (rows first: (N, F) tables, (N, H, W[, C]) images) and
    ``options.y`` (N labels)."""
    shown = os.path.relpath(path)
    if not path.is_file():
        raise UsageError(
            f"data file {shown} not found (check data.input.file and samples-dir in vergeml.yaml)"
        )
    if not zipfile.is_zipfile(path):  # np.load would read it as a pickle, or fail on EOF
        raise UsageError(
            f"{shown} is not an .npz archive (save the arrays with numpy.savez, e.g. "
            f"numpy.savez({shown!r}, x=features, y=labels))"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {
                key: _array(archive, key, shown, setting)
                for key, setting in ((options.x, "x"), (options.y, "y"))
            }
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot read {shown} as .npz: {exc} (save it with numpy.savez)") from None
    x, y = arrays[options.x], arrays[options.y]
    if len(x) != len(y) or y.ndim != 1:
        raise UsageError(
            f"{shown}: {options.x!r} has {len(x)} rows but {options.y!r} has shape {y.shape} (need one label per row)"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise UsageError(f"{shown}: {options.x!r} holds {x.dtype}, not numbers (convert it to floats)")
    if len(x) == 0:
        raise UsageError(f"{shown}: {options.x!r} has no rows (add samples)")
    if not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise UsageError(
            f"{shown}: {options.x}[{', '.join(map(str, where))}] is {x[where]} (make every value a finite number)"
        )
    labels = np.asarray([str(v) for v in y.tolist()])
    x = x.astype(np.float32)
    if x.ndim == 2:
        return Source(x=x, labels=labels, features=tuple(f"{options.x}[{i}]" for i in range(x.shape[1])))
    if x.ndim in (3, 4):
        images = x[..., None] if x.ndim == 3 else x
        return Source(x=list(images), labels=labels, names=tuple(f"{shown}[{i}]" for i in range(len(x))))
    raise UsageError(
        f"{shown}: {options.x!r} has shape {x.shape}; use (rows, features) or (rows, height, width[, channels])"
    )


def _array(archive: np.lib.npyio.NpzFile, key: str, shown: str, setting: str) -> np.ndarray:
    if key not in archive.files:
        raise UsageError(
            f"array {key!r} is not in {shown} (it has: {', '.join(archive.files) or 'nothing'}; set data.input.{setting})"
        )
    return archive[key]
