"""The CSV source: a header row, numeric feature columns and a class column."""

from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vml.errors import UsageError


@dataclass(frozen=True)
class Table:
    """Features, class indices and the class labels they stand for."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    features: tuple[str, ...]


def read_csv(path: Path, target: str) -> Table:
    """Read ``path``; every column but ``target`` is a numeric feature."""
    shown = os.path.relpath(path)
    if not path.is_file():
        raise UsageError(
            f"data file {shown} not found (check data.input.file and samples-dir in vergeml.yaml)"
        )
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise UsageError(f"data file {shown} is empty (it needs a header row and data rows)")
        header = [name.strip() for name in header]
        if target not in header:
            close = difflib.get_close_matches(target, header, n=1)
            hint = f"did you mean {close[0]}?" if close else f"its columns: {', '.join(header[:8])}"
            raise UsageError(f"target column {target!r} is not in {shown} ({hint} Set data.input.target)")
        target_index = header.index(target)
        features = tuple(name for i, name in enumerate(header) if i != target_index)
        rows: list[list[float]] = []
        labels: list[str] = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise UsageError(
                    f"{shown} line {line}: {len(row)} values but the header has {len(header)} "
                    "(fix the row or the header)"
                )
            labels.append(row[target_index].strip())
            values = row[:target_index] + row[target_index + 1 :]
            try:
                rows.append([float(v) for v in values])
            except ValueError:
                pairs = zip(features, values, strict=True)
                column, bad = next((f, v) for f, v in pairs if not _is_number(v))
                raise UsageError(
                    f"{shown} line {line}, column {column!r}: {bad!r} is not a number "
                    "(fix the value or drop the column)"
                ) from None
    if not rows:
        raise UsageError(f"data file {shown} has a header but no data rows")
    classes, y = _encode_labels(labels)
    return Table(np.asarray(rows, dtype=np.float32), y, classes, features)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _encode_labels(labels: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Map labels to class indices, numeric labels in numeric order."""
    unique = set(labels)
    if all(_is_number(label) for label in unique):
        ordered = sorted(unique, key=float)
    else:
        ordered = sorted(unique)
    index = {label: i for i, label in enumerate(ordered)}
    return tuple(ordered), np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
