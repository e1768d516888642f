"""``ml rerun`` and ``ml diff``: repeat a run as it was, and tell two runs apart
(hyperparameters, metrics, environment, code)."""

from __future__ import annotations

import sys

import typer

from vml import api
from vml.cli import render
from vml.cli.options import RUN, TABLE_JSON, check_format, format_option
from vml.cli.train import report
from vml.views import compared_text


def rerun(
    run: str = RUN,
    name: str | None = typer.Option(None, "--name", help="Name of the new run (default: a generated one)."),
) -> None:
    """Train a run again with the same resolved config, seed and data; first say what differs now."""
    project = api.Project()
    if name is not None:
        project.new_run_name(name)  # a taken or bad name is refused before anything is said
    source, changes = project.rerun_plan(run)
    if changes:
        print(f"rerun of {source['name']}: what differs now", file=sys.stderr)
        for what, then, now in changes:
            print(f"  {what}: {then} -> {now}", file=sys.stderr)
    else:
        print(
            f"rerun of {source['name']}: same commit, changes, packages, data and device as it had",
            file=sys.stderr,
        )
    report(project.rerun(f"@{source['name']}", name))


def diff(
    a: str = typer.Argument(..., help="A run: its name, @name, a unique prefix, or @last."),
    b: str = typer.Argument(..., help="The run to compare it with."),
    fmt: str = format_option(TABLE_JSON),
) -> None:
    """Tell two runs apart: hyperparameters, metrics, environment, packages and code."""
    check_format(fmt, TABLE_JSON)
    found = api.Project().diff(a, b)
    if fmt == "json":
        render.print_json(found)
        return
    names = found["runs"]
    # "*": the values differ (the hyperparameters and environment shown always do).
    rows = [
        ["*", "hyperparameter", row["name"], *map(compared_text, row["values"])]
        for row in found["hyperparameters"]
    ]
    rows += [
        [
            "*" if len(set(row["values"])) > 1 else "",
            "metric",
            row["metric"],
            *(compared_text(v, "best_metric") for v in row["values"]),
        ]
        for row in found["metrics"]
    ]
    rows += [
        ["*", "environment", row["field"], *map(compared_text, row["values"])] for row in found["environment"]
    ]
    render.print_table(["", "", "field", *names], rows)
    packages = found["packages"]
    if packages:
        print("\npackages (" + " -> ".join(names) + "):")
        for kind in ("changed", "added", "removed"):
            for entry in packages[kind]:
                print(f"  {kind}: {entry}")
    code = found["code"]
    if code.get("untracked"):
        print("\nuntracked source files:")
        for name, files in zip(names, code["untracked"], strict=True):
            print(f"  {name}: {', '.join(files) or 'none'}")
    print(
        f"\ncode: {code['note']}"
        if "note" in code
        else f"\ncode: git diff {code['commits'][0][:10]} {code['commits'][1][:10]}"
    )
    if code.get("diff"):
        sys.stdout.write(code["diff"])
    for name, patch in zip(names, found["patches"], strict=True):
        if patch:
            print(f"\nuncommitted changes of {name} (repro.patch):")
            sys.stdout.write(patch)
