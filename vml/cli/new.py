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
    template: str | None = typer.Option(
        None, "--template", "-t", help=f"Template to copy (default: {api.DEFAULT_TEMPLATE})."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Copy the template of this model, e.g. cnn (VergeML's form)."
    ),
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
    if model is not None:
        picked = api.template_for_model(model)
        if template is not None and template != picked:
            raise UsageError(
                f"--model {model} picks template {picked!r}, --template {template!r} another (give one of them)"
            )
        template = picked
    template = template or api.DEFAULT_TEMPLATE
    created = api.create_project(directory, template)
    print(f"created project {created} from template {template!r}")
    print(f"next: cd {created} && ml train")
