"""Models from installed packages, declared under the entry point group ``vml.models``.

An entry point names either a ``ModelSpec`` or a function / ``nn.Module`` class whose
constructor declares the hyperparameters (see ``vml.models.declare``).
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from vml.errors import UsageError
from vml.models import PLUGIN_GROUP, ModelSpec
from vml.models.declare import DeclarationError, from_signature


@functools.cache
def plugin_models() -> dict[str, ModelSpec]:
    """Every installed plugin model by name (loaded once per process)."""
    models = {}
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            target = entry.load()
        except Exception as exc:  # a broken plugin must not break every command
            raise UsageError(f"model plugin {entry.name!r} ({entry.value}) failed to load: {exc}") from None
        if isinstance(target, ModelSpec):
            models[entry.name] = target
            continue
        try:
            params = from_signature(target, f"plugin {entry.name}")
        except DeclarationError as exc:
            raise UsageError(f"{exc} (fix the plugin)") from None
        summary = ((target.__doc__ or "").strip().splitlines() or [f"Plugin model from {entry.value}."])[0]
        models[entry.name] = ModelSpec(entry.name, summary, params, entry.value)
    return models
