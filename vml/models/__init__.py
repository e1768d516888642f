"""The model registry. Specs are torch-free so ``ml help`` and ``ml list`` stay fast;
a model's network code is imported only when a run builds it."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vml.errors import UsageError
from vml.params import HyperParam

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, summary, declared hyperparameters and where its code lives
    (``module:function`` taking ``input_shape, num_classes, **hyperparameters``)."""

    name: str
    summary: str
    hyperparameters: tuple[HyperParam, ...]
    factory: str

    def build(self, input_shape: tuple[int, ...], num_classes: int, **hparams: Any) -> nn.Module:
        """Import the model's code and construct the network."""
        module_name, function_name = self.factory.split(":")
        factory = getattr(importlib.import_module(module_name), function_name)
        own = {p.name for p in self.hyperparameters}
        return factory(input_shape, num_classes, **{k: v for k, v in hparams.items() if k in own})


MLP = ModelSpec(
    name="mlp",
    summary="A multilayer perceptron for tables (flattens any input).",
    hyperparameters=(
        HyperParam("hidden_size", int, 128, "Units in each hidden layer.", minimum=1),
        HyperParam("hidden_layers", int, 1, "Number of hidden layers.", minimum=0, maximum=16),
        HyperParam(
            "dropout",
            float,
            0.1,
            "Fraction of hidden units dropped while training.",
            minimum=0,
            maximum=0.95,
        ),
    ),
    factory="vml.models.mlp:build",
)

BUILTIN_MODELS: dict[str, ModelSpec] = {MLP.name: MLP}


def get_model(name: str) -> ModelSpec:
    """Look up a model by name; a miss names the closest known model."""
    spec = BUILTIN_MODELS.get(name.strip().lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name, BUILTIN_MODELS, n=1)
    hint = f"did you mean {close[0]}?" if close else f"known models: {', '.join(BUILTIN_MODELS)}"
    raise UsageError(f"unknown model {name!r}: {hint} (see ml help models)")
