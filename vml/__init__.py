"""vml: a terminal-first experiment manager for PyTorch training.

The public API, ``vml.Project``, ``vml.Run`` and ``vml.RunFailed``, is loaded on first
use, so importing a lower layer (``vml.store``, ``vml.config``) loads no ``vml.api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vml.version import __version__

__all__ = ["Project", "Run", "RunFailed", "__version__"]

if TYPE_CHECKING:
    from vml.api import Project, Run, RunFailed


def __getattr__(name: str) -> Any:
    if name in ("Project", "Run", "RunFailed"):
        from vml import api

        return getattr(api, name)
    raise AttributeError(f"module 'vml' has no attribute {name!r}")
