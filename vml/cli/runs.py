"""Commands on one trained run: ``ml resume``, ``ml test``, ``ml predict``, ``ml export``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vml import api
from vml.cli import render
from vml.cli.options import FORMATS, RUN, TABLE_JSON, check_format, format_option
from vml.cli.train import report
from vml.errors import UsageError
from vml.views import TEST_METRICS


def resume(run: str = RUN) -> None:
    """Continue a cancelled, failed, killed or crashed run from its last.pt."""
    report(api.Project().resume(run))


def test(run: str = RUN, fmt: str = format_option(TABLE_JSON)) -> None:
    """Evaluate a run's best checkpoint on its test split again."""
    check_format(fmt, TABLE_JSON)
    scores = api.Project().test(run)
    if fmt == "json":
        render.print_json(scores)
        return
    shown = ", ".join(f"{key} {scores[key]:.4f}" for key in TEST_METRICS if scores.get(key) is not None)
    print(f"{scores['instance']}: {shown}")


def predict(
    run: str = RUN,
    files: list[Path] = typer.Argument(..., help="Image files, or CSV files whose rows to predict."),
    top: int = typer.Option(3, "--top", "-k", help="How many labels to show per input."),
    fmt: str = format_option(FORMATS),
) -> None:
    """Predict labels (with probabilities) for images or CSV rows with a run's best checkpoint."""
    check_format(fmt, FORMATS)
    if top < 1:
        raise UsageError(f"--top {top} must be at least 1")
    results = api.Project().predict(run, files, top)
    if fmt == "json":
        render.print_json(results)
        return
    if results and "value" in results[0]:  # a regression: one number per input
        columns = ["input", "value"]
        rows = [[r["input"], f"{r['value']:.6g}"] for r in results]
    else:
        columns = ["input", "rank", "label", "probability"]
        rows = [
            [r["input"], str(rank), p["label"], f"{p['probability']:.4f}"]
            for r in results
            for rank, p in enumerate(r["predictions"], start=1)
        ]
    if fmt == "csv":
        render.print_csv(columns, rows)
    else:
        render.print_table(columns, rows)


def export(
    run: str = RUN, directory: Path = typer.Argument(..., help="A new directory for the exported model.")
) -> None:
    """Export a run's best model to use without vml: weights, config, labels, and a torch.export program."""
    for path in api.Project().export(run, directory):
        print(path)
    print(f"load it with: torch.export.load('{directory}/model.pt2').module()", file=sys.stderr)
