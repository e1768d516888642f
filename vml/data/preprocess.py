"""Preprocessing ops, declared once: name, options, help. Ops are fitted on the
training split only and then applied to every split."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vml.params import HyperParam, display_key, normalize_key

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class Op:
    """A declared preprocessing op: ``fit`` learns state from training features,
    ``apply`` transforms any split with that state."""

    name: str
    help: str
    options: tuple[HyperParam, ...]
    fit: Callable[[np.ndarray, dict[str, Any]], State]
    apply: Callable[[np.ndarray, State, dict[str, Any]], np.ndarray]


class OpError(Exception):
    """A bad op in ``data.preprocess``; ``path`` points into the list."""

    def __init__(self, path: tuple, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _fit_standardize(x: np.ndarray, options: dict[str, Any]) -> State:
    std = x.std(axis=0)
    # Constant features (blank pixels) would divide by zero; leave them centred at 0.
    return {"mean": x.mean(axis=0), "std": np.where(std > 0, std, 1.0)}


def _apply_standardize(x: np.ndarray, state: State, options: dict[str, Any]) -> np.ndarray:
    return (x - state["mean"]) / state["std"]


def _fit_normalize(x: np.ndarray, options: dict[str, Any]) -> State:
    low, high = x.min(axis=0), x.max(axis=0)
    return {"low": low, "span": np.where(high > low, high - low, 1.0)}


def _apply_normalize(x: np.ndarray, state: State, options: dict[str, Any]) -> np.ndarray:
    unit = (x - state["low"]) / state["span"]
    return options["min"] + unit * (options["max"] - options["min"])


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op(
            "standardize",
            "Scale each feature to mean 0 and standard deviation 1 (fitted on the training split).",
            (),
            _fit_standardize,
            _apply_standardize,
        ),
        Op(
            "normalize",
            "Scale each feature linearly into [min, max] (fitted on the training split).",
            (
                HyperParam("min", float, 0.0, "Lower end of the output range."),
                HyperParam("max", float, 1.0, "Upper end of the output range."),
            ),
            _fit_normalize,
            _apply_normalize,
        ),
    )
}


def check_ops(ops: list[Any]) -> tuple[dict[str, Any], ...]:
    """Validate ``data.preprocess`` entries; return them with options filled in."""
    checked = []
    for index, entry in enumerate(ops):
        if isinstance(entry, str):
            entry = {"op": entry}
        if not isinstance(entry, dict) or "op" not in entry:
            raise OpError((index,), "each preprocess entry needs an op, e.g. - op: standardize")
        name = normalize_key(str(entry["op"])).replace("_", "-")
        op = OPS.get(name)
        if op is None:
            close = difflib.get_close_matches(name, OPS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known ops: {', '.join(OPS)}"
            raise OpError((index, "op"), f"unknown preprocess op {entry['op']!r}: {hint}")
        declared = {p.name: p for p in op.options}
        options = {p.name: p.default for p in op.options}
        for key, value in entry.items():
            if key == "op":
                continue
            param = declared.get(key)
            if param is None:
                known = ", ".join(display_key(k) for k in declared) or "none"
                raise OpError(
                    (index, key, "__key__"),
                    f"unknown option {display_key(key)!r} for op {name} (options: {known})",
                )
            try:
                options[key] = param.parse(value)
            except ValueError as exc:
                raise OpError((index, key), f"invalid {display_key(key)} for op {name}: {exc}") from None
        checked.append({"op": name, **options})
    return tuple(checked)


def fit_and_apply(
    ops: tuple[dict[str, Any], ...], splits: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], State]:
    """Fit each op on ``splits['train']`` and apply it to all splits, in order.
    Returns the transformed splits and each op's fitted state as ``op<i>.<key>``
    arrays (kept so predictions can be preprocessed the same way)."""
    splits = dict(splits)
    states: dict[str, np.ndarray] = {}
    for index, entry in enumerate(ops):
        op = OPS[entry["op"]]
        options = {k: v for k, v in entry.items() if k != "op"}
        state = op.fit(splits["train"], options)
        for split, x in splits.items():
            splits[split] = op.apply(x, state, options).astype(np.float32)
        states.update({f"op{index}.{key}": value for key, value in state.items()})
    return splits, states
