"""``ml serve RUN|MODEL``: predictions over HTTP (the ``vml[serve]`` extra)."""

from __future__ import annotations

import typer

from vml import api


def serve(
    target: str = typer.Argument(..., help="A run (name, @name, prefix, @last) or a stored model: NAME, NAME:vN."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="The port to listen on."),
) -> None:
    """Serve a run's or a stored model's predictions over HTTP: POST /predict, GET /health, /info, /docs."""
    api.Project().serve(target, host=host, port=port)
