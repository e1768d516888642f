"""``ml new``: make a project from a template."""

from __future__ import annotations

from pathlib import Path

import typer

from vml import api
from vml.errors import UsageError


def new(
    directory: Path | None = typer.Argument(
        None, help="The new project's directory (must not exist, or be empty)."
    ),
    template: str = typer.Option(api.DEFAULT_TEMPLATE, "--template", "-t", help="Template to copy."),
    list_templates: bool = typer.Option(False, "--list-templates", help="List the templates and exit."),
) -> None:
    """Create a project from a template.

    The project holds a vergeml.yaml and a data set, ready for `ml train`.
    """
    if list_templates:
        for entry in api.templates():
            print(f"{entry.name:12} {entry.summary}")
        return
    if directory is None:
        raise UsageError("ml new needs a directory name (e.g. ml new demo)")
    created = api.create_project(directory, template)
    print(f"created project {created} from template {template!r}")
    print(f"next: cd {created} && ml train")
