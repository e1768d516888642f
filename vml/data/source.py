"""What every data source returns, and reading the configured one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vml.errors import UsageError


@dataclass(frozen=True)
class Source:
    """Samples read from one place: ``x`` is a (rows, features) array for tables or a
    list of (height, width, channels) float arrays for images; ``labels`` are the raw
    labels as text; ``names`` say where each image came from; ``classes`` is the
    class order a label list gives; ``fixed`` each sample's fixed split (``""``: none)."""

    x: np.ndarray | list[np.ndarray]
    labels: np.ndarray
    features: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    fixed: np.ndarray | None = None

    @property
    def is_images(self) -> bool:
        return isinstance(self.x, list)

    def take(self, index: np.ndarray) -> Source:
        """The samples at ``index``, in that order."""
        x = [self.x[i] for i in index] if self.is_images else self.x[index]
        names = tuple(self.names[i] for i in index) if self.names else None
        fixed = self.fixed[index] if self.fixed is not None else None
        return Source(x, self.labels[index], self.features, names, self.classes, fixed)


def class_names(*label_sets: np.ndarray) -> tuple[str, ...]:
    """The classes over all label sets: numeric labels in numeric order, others
    alphabetically."""
    unique = set().union(*(set(labels.tolist()) for labels in label_sets))
    try:
        return tuple(sorted(unique, key=float))
    except ValueError:
        return tuple(sorted(unique))


def class_indices(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Each label's position in ``classes``."""
    lookup = {label: i for i, label in enumerate(classes)}
    return np.fromiter((lookup[v] for v in labels.tolist()), np.int64, len(labels))


def require_classes(classes: tuple[str, ...], where: str) -> None:
    if len(classes) < 2:
        only = f" ({classes[0]!r})" if classes else ""
        raise UsageError(
            f"{where} has only one class{only}; classification needs at least two (check the target)"
        )


def require_discrete(classes: tuple[str, ...], where: str) -> None:
    """A classification target must name classes, not measure a quantity."""
    for label in classes:
        try:
            value = float(label)
        except ValueError:
            return
        if not value.is_integer():
            raise UsageError(
                f"the target of {where} looks continuous (e.g. {label}); for a regression set "
                "loss: mse (or l1, smooth-l1) under train: in vergeml.yaml"
            )


def targets(labels: np.ndarray, where: str) -> np.ndarray:
    """Regression targets as float32."""
    try:
        return labels.astype(np.float32)
    except ValueError:
        bad = next(v for v in labels.tolist() if not _is_float(v))
        raise UsageError(
            f"{where}: target value {bad!r} is not a number; a regression needs numbers"
        ) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
