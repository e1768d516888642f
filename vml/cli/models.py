"""``ml store RUN --as NAME`` and ``ml models``: the model store, ``models/NAME/vN/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import FORMATS, RUN, check_format, command_group, format_option
from vml.errors import human_size
from vml.views import local_time

app = command_group()

COLUMNS = ("model", "run", "net", "test_acc", "test_r2", "stored", "size")
FORMAT_OPTION = format_option(FORMATS)


def store(
    run: str = RUN,
    name: str = typer.Option(
        ..., "--as", help="The model's name in the store, e.g. digits (letters, digits, . _ -)."
    ),
) -> None:
    """Keep a run's model in the model store as the next version of NAME.

    The exported model, its labels, the resolved config and the reproducibility record go
    to models/NAME/vN/, where deleting or pruning the run leaves them. ml serve NAME serves
    the newest version, ml serve NAME:v2 the second.
    """
    version = api.Project().store_model(run, name)
    print(
        f"stored run {version['run']} as {version['ref']} ({human_size(version['size'])} in {_shown(version['folder'])})"
    )
    print(f"serve it with: ml serve {version['name']}")


@app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    fmt: str = FORMAT_OPTION,
) -> None:
    """List the stored models and their versions (ml store RUN --as NAME adds one).

    ml models delete NAME:vN removes a version.
    """
    if ctx.invoked_subcommand is not None:
        return
    check_format(fmt, FORMATS)
    versions = api.Project().models()
    if fmt == "json":
        render.print_json(versions)
        return
    rows = [_row(version) for version in versions]
    if fmt == "csv":
        render.print_csv(COLUMNS, rows)
    elif rows:
        # A table drops the test columns no version has (test_r2 of classifiers).
        shown = [
            i for i, column in enumerate(COLUMNS) if not column.startswith("test_") or any(r[i] for r in rows)
        ]
        render.print_table([COLUMNS[i] for i in shown], ([row[i] for i in shown] for row in rows))
    else:
        print("no stored models (ml store RUN --as NAME stores one)")


@app.command("delete")
def delete(ref: str = typer.Argument(..., help="The version to remove: NAME:vN.")) -> None:
    """Remove one stored version; the model's name goes with its last version."""
    version = api.Project().delete_model(ref)
    print(f"deleted {version['ref']} (stored from run {version.get('run', '?')})")


def _shown(folder: str) -> str:
    """``models/digits/v2`` when under the working directory, else the full path."""
    path = Path(folder)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _row(version: dict[str, Any]) -> list[str]:
    metrics = version.get("test_metrics") or {}
    return [
        version["ref"],
        version.get("run", ""),
        version.get("model", ""),
        *(f"{metrics[key]:.4f}" if metrics.get(key) is not None else "" for key in ("test_acc", "test_r2")),
        local_time(version["stored_at"]) if version.get("stored_at") else "",
        human_size(version["size"]),
    ]
