"""``ml export`` (a model, TensorBoard or MLflow) and ``ml tensorboard``."""

from __future__ import annotations

from vml.cli.runs import export

__all__ = ["export"]
