"""Commands on one trained run: ``ml resume``, ``ml test``, ``ml predict``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vml import api
from vml.cli import render
from vml.cli.options import FORMATS, RUN, TABLE_JSON, check_format, format_option
from vml.cli.train import report
from vml.config import PREDICT_RESIZE_MODES
from vml.errors import UsageError
from vml.views import TEST_METRICS


def resume(
    run: str = RUN,
    epochs: int | None = typer.Option(
        None,
        "--epochs",
        metavar="N",
        help="Continue to N epochs in all (also a finished run).",
    ),
) -> None:
    """Continue a cancelled, failed, killed or crashed run from its last.pt."""
    report(api.Project().resume(run, epochs=epochs))


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
    top: int | None = typer.Option(
        None, "--top", "-k", "--labels", help="How many labels to show per input (default 3)."
    ),
    fmt: str | None = typer.Option(None, "--format", "-f", help="table, json or csv."),
    compact: bool | None = typer.Option(
        None, "--compact/--no-compact", help="One line an input: the input and its top label (VergeML's)."
    ),
    resize: str | None = typer.Option(
        None, "--resize", help="VergeML's resize mode: accepted and ignored (the run's ops resize inputs)."
    ),
) -> None:
    """Predict labels (with probabilities) for images or CSV rows with a run's best checkpoint."""
    project = api.Project()
    # vergeml.yaml's predict: section gives the defaults; the command line wins.
    settings = project.config
    fmt = fmt or settings.predict_format or "table"
    check_format(fmt, FORMATS)
    top = top if top is not None else settings.predict_top or 3
    if top < 1:
        raise UsageError(f"--top {top} must be at least 1")
    if resize is not None and resize not in PREDICT_RESIZE_MODES:
        raise UsageError(f"unknown --resize {resize!r} (use one of: {', '.join(PREDICT_RESIZE_MODES)})")
    if (resize or settings.predict_resize) is not None:
        print(
            "ml: note: predict.resize (VergeML's) is ignored: vml resizes inputs with the run's preprocess ops",
            file=sys.stderr,
        )
    results = project.predict(run, files, top)
    if compact if compact is not None else settings.predict_compact:
        for r in results:
            print(
                f"{r['input']}\t{r['value']:.6g}"
                if "value" in r
                else f"{r['input']}\t{r['predictions'][0]['label']}"
            )
        return
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

