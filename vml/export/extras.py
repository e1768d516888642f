"""The optional packages the exports need, imported only when an export runs: a
missing one is a one-line error naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from vml.errors import UsageError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or refuse: ``PURPOSE needs the EXTRA extra (pip install
    'vml[EXTRA]')``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{purpose} needs the {extra} extra (pip install 'vml[{extra}]')") from None
