"""``ml preprocess``: write previews of what the model will see."""

from __future__ import annotations

from pathlib import Path

import typer

from vml import api
from vml.errors import UsageError


def preprocess(
    directory: Path = typer.Argument(Path("preprocessed"), help="Where to write the previews."),
    num_samples: int = typer.Option(50, "--num-samples", "-n", help="Samples to write from each split."),
    split: str = typer.Option("all", "--split", help="train, val, test or all."),
) -> None:
    """Write previews of the prepared data: images as PNG, tables as CSV.

    The data is read, split and preprocessed exactly as `ml train` would (and cached).
    """
    if num_samples < 1:
        raise UsageError(f"--num-samples {num_samples} must be at least 1")
    counts = api.Project().preview(directory, num_samples, split=split)
    summary = ", ".join(f"{n} {split}" for split, n in counts.items())
    print(f"wrote previews of {summary} to {directory}")
