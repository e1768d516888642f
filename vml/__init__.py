"""vml: a terminal-first experiment manager for PyTorch training."""

__version__ = "0.1.0"

from vml.api import Project, Run, RunFailed  # noqa: E402  (the public API; imports nothing heavy)

__all__ = ["Project", "Run", "RunFailed", "__version__"]
