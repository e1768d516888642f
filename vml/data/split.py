"""Seeded, stratified val/test/train splits."""

from __future__ import annotations

import numpy as np

from vml.config import Split
from vml.errors import UsageError


def split_indices(y: np.ndarray, val: Split, test: Split, seed: int) -> dict[str, np.ndarray]:
    """Indices of the train, val and test splits; each class is spread over the
    splits in proportion to its size, and the same seed gives the same split."""
    total = len(y)
    n_val, n_test = val.size(total), test.size(total)
    for name, split, size in (("val", val, n_val), ("test", test, n_test)):
        if split.kind == "percent" and split.amount > 0 and size == 0:  # it would score nothing
            raise UsageError(
                f"{name}-split ({split}) of {total} samples is none of them (add samples, or give "
                f"a count, e.g. {name}-split: 1)"
            )
    if n_val + n_test >= total:
        raise UsageError(
            f"val-split ({val}) and test-split ({test}) take {n_val + n_test} of {total} "
            "samples, leaving none to train on (make them smaller)"
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    by_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    take_test = _allocate(n_test, counts)
    take_val = _allocate(n_val, counts - take_test)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for members, t, v in zip(by_class, take_test, take_val, strict=True):
        parts["test"].append(members[:t])
        parts["val"].append(members[t : t + v])
        parts["train"].append(members[t + v :])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def _allocate(amount: int, counts: np.ndarray) -> np.ndarray:
    """Share ``amount`` over classes in proportion to ``counts`` (largest remainder)."""
    if amount == 0 or counts.sum() == 0:
        return np.zeros_like(counts)
    exact = amount * counts / counts.sum()
    shares = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: amount - shares.sum()]] += 1
    return np.minimum(shares, counts)
