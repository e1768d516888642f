"""What ``ml serve`` serves: a run's best checkpoint or a stored model version."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Served:
    """A model to serve. ``folder`` holds its ``best.pt`` (a run's folder, or a model
    store version's); ``root`` is where a project model's ``./file.py`` is found (the
    project, or the version folder, which keeps a copy)."""

    folder: Path
    root: Path
    run: str  # the run that trained it
    model: str | None = None  # NAME:vN when it comes from the model store
    test_metrics: dict[str, Any] = field(default_factory=dict)
    commit: str | None = None  # the reproducibility record's git commit
