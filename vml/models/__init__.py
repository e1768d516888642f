"""The model registry: built-ins, installed plugins (entry point group ``vml.models``)
and the project's own ``model: ./net.py:Net``.

Specs are torch-free, so ``ml help`` and ``ml list`` stay fast: a project file is
read with ``ast`` rather than imported, and a model's code is imported only when a run
builds it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vml.errors import UsageError, did_you_mean
from vml.params import HyperParam

if TYPE_CHECKING:
    from torch import nn

PLUGIN_GROUP = "vml.models"


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, summary, declared hyperparameters and where its code lives:
    ``factory`` is ``module:attribute`` (or ``path.py:attribute`` when ``source`` is a
    project file) naming a function or ``nn.Module`` class that takes
    ``input_shape``, ``num_classes`` and the hyperparameters as keywords."""

    name: str
    summary: str
    hyperparameters: tuple[HyperParam, ...]
    factory: str
    source: Path | None = None
    error: str | None = None  # why an installed plugin cannot be used

    def build(self, input_shape: tuple[int, ...], num_classes: int, **hparams: Any) -> nn.Module:
        """Import the model's code and construct the network. For the project's own
        file (net.py), an error its code raises, or a network without trainable
        parameters, is a ``UsageError`` naming the file's line: before a run is recorded."""
        if self.source is None:
            return self._construct(input_shape, num_classes, hparams)
        try:
            model = self._construct(input_shape, num_classes, hparams)
        except Exception as exc:  # the user's code: its own mistake, told in one line
            import traceback

            frames = traceback.extract_tb(exc.__traceback__)
            lines = [f.lineno for f in frames if f.filename == str(self.source)]
            where = f"{self.source.name}:{lines[-1]}" if lines else self.source.name
            raise UsageError(
                f"model {self.name} could not be built: {type(exc).__name__}: {exc} "
                f"(at {where}; fix it there, ml help models)"
            ) from None
        from torch import nn

        if not isinstance(model, nn.Module):
            raise UsageError(
                f"model {self.name} built a {type(model).__name__}, not a torch.nn.Module "
                "(make it subclass torch.nn.Module; ml help models)"
            )
        if not any(p.requires_grad for p in model.parameters()):
            raise UsageError(
                f"model {self.name} has no trainable parameters (give it layers, e.g. nn.Linear; ml help models)"
            )
        return model

    def _construct(self, input_shape: tuple[int, ...], num_classes: int, hparams: dict[str, Any]) -> Any:
        factory = self._load()
        accepted = inspect.signature(factory).parameters
        given = {"input_shape": input_shape, "num_classes": num_classes}
        given |= {p.name: hparams[p.name] for p in self.hyperparameters if p.name in hparams}
        return factory(**{k: v for k, v in given.items() if k in accepted})

    def _load(self) -> Any:
        module_name, attribute = self.factory.rsplit(":", 1)
        if self.source is None:
            return getattr(importlib.import_module(module_name), attribute)
        spec = importlib.util.spec_from_file_location(f"vml_project_model_{self.source.stem}", self.source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return getattr(module, attribute)


MLP = ModelSpec(
    name="mlp",
    summary="A multilayer perceptron for tables (flattens any input).",
    hyperparameters=(
        HyperParam("hidden_size", int, 128, "Units in each hidden layer.", minimum=1),
        HyperParam("hidden_layers", int, 1, "Number of hidden layers.", minimum=0, maximum=16),
        HyperParam(
            "dropout", float, 0.1, "Fraction of hidden units dropped while training.", minimum=0, maximum=0.95
        ),
    ),
    factory="vml.models.mlp:build",
)

CNN = ModelSpec(
    name="cnn",
    summary="A small convolutional network for images (channels x height x width).",
    hyperparameters=(
        HyperParam(
            "channels", int, 32, "Filters in the first convolution (doubled in each next one).", minimum=1
        ),
        HyperParam(
            "conv_layers", int, 2, "Convolution blocks (conv, ReLU, 2x2 max-pool).", minimum=1, maximum=8
        ),
        HyperParam(
            "kernel_size", int, 3, "Width and height of each convolution kernel.", minimum=1, maximum=11
        ),
        HyperParam(
            "dropout",
            float,
            0.1,
            "Fraction of features dropped before the classifier.",
            minimum=0,
            maximum=0.95,
        ),
    ),
    factory="vml.models.cnn:build",
)

LINEAR = ModelSpec(
    name="linear",
    summary="A linear baseline: one fully connected layer on the flattened input.",
    hyperparameters=(),
    factory="vml.models.linear:build",
)

BUILTIN_MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (MLP, CNN, LINEAR)}


def get_model(name: str, root: Path | None = None) -> ModelSpec:
    """Look up a model: a built-in or plugin by name, or ``./file.py:Class`` inside
    the project at ``root``. A miss names the closest known model."""
    name = name.strip()
    if ".py:" in name:
        from vml.models.local import spec_from_file

        return spec_from_file(name, root or Path.cwd())
    # A plugin cannot replace a built-in, so a built-in needs no look at the installed
    # packages (the entry point scan: ~10 ms in every process that reads vergeml.yaml).
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name]
    models = available_models()
    spec = models.get(name) or {key.lower(): spec for key, spec in models.items()}.get(name.lower())
    if spec is not None and spec.error:
        raise UsageError(
            f"model plugin {spec.name!r} ({spec.factory}) {spec.error} (fix or uninstall the plugin)"
        )
    if spec is not None:
        return spec
    hint = did_you_mean(name, models, f"known models: {', '.join(models)}")
    raise UsageError(f"unknown model {name!r}: {hint} (see ml help models, or use ./file.py:Class)")


def available_models() -> dict[str, ModelSpec]:
    """Built-ins, then installed plugins (a plugin cannot replace a built-in)."""
    from vml.models.plugins import plugin_models

    plugins = plugin_models()
    return BUILTIN_MODELS | {name: spec for name, spec in plugins.items() if name not in BUILTIN_MODELS}
