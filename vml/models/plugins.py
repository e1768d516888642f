"""Models from installed packages, declared under the entry point group ``vml.models``.

An entry point names either a ``ModelSpec`` or a function / ``nn.Module`` class whose
constructor declares the hyperparameters (see ``vml.models.declare``).
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from vml.models import PLUGIN_GROUP, ModelSpec
from vml.models.declare import DeclarationError, from_signature


@functools.cache
def plugin_models() -> dict[str, ModelSpec]:
    """Every installed plugin model by name (loaded once per process)."""
    models = {}
    for entry in entry_points(group=PLUGIN_GROUP):
        # A broken plugin must not break every command: it is listed with its error,
        # and only training with it fails.
        try:
            target = entry.load()
        except Exception as exc:
            models[entry.name] = _broken(entry.name, entry.value, f"failed to load: {exc}")
            continue
        if isinstance(target, ModelSpec):
            models[entry.name] = target
            continue
        try:
            params = from_signature(target, f"plugin {entry.name}")
        except DeclarationError as exc:
            models[entry.name] = _broken(entry.name, entry.value, str(exc))
            continue
        summary = ((target.__doc__ or "").strip().splitlines() or [f"Plugin model from {entry.value}."])[0]
        models[entry.name] = ModelSpec(entry.name, summary, params, entry.value)
    return models


def _broken(name: str, value: str, error: str) -> ModelSpec:
    return ModelSpec(name, f"plugin {value} is broken: {error}", (), value, error=error)
