"""``ml serve RUN|MODEL``: predictions over HTTP (the ``vml[serve]`` extra)."""

from __future__ import annotations

import re

import typer

from vml import api
from vml.errors import UsageError

UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}
UNITS |= {"g": 1000**3, "gb": 1000**3, "gib": 1024**3}
SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*")


def serve(
    target: str = typer.Argument(
        ..., help="A run (name, @name, prefix, @last) or a stored model: NAME, NAME:vN."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="The address to listen on (0.0.0.0 or :: for every interface, with a warning).",
    ),
    port: int = typer.Option(8000, "--port", help="The port to listen on (0: a free one, shown at start)."),
    max_body: str = typer.Option(
        "16MiB", "--max-body", help="The largest request body, e.g. 512KiB, 64MiB; larger ones get 413."
    ),
    threads: int = typer.Option(
        1, "--threads", min=1, help="torch's CPU threads per prediction (requests already run in parallel)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request on stderr."),
) -> None:
    """Serve a run's or a stored model's predictions over HTTP until Ctrl-C.

    POST /predict takes JSON rows ({"rows": [{"COLUMN": number, ...}]}), CSV, or
    image files (multipart) and answers the top labels with probabilities (?top=3) or
    the regression values. GET /health, GET /info, and the OpenAPI docs at /docs.
    """
    limit = parse_size(max_body)
    api.Project().serve(target, host=host, port=port, max_body=limit, threads=threads, access_log=access_log)


def parse_size(text: str) -> int:
    """``16MiB``, ``512KiB``, ``1000000``: a size in bytes, at least 1 KiB."""
    match = SIZE.fullmatch(text.lower())
    if match is None or match.group(2) not in UNITS:
        raise UsageError(f"--max-body {text!r} is not a size (use bytes or a unit, e.g. 16MiB, 512KiB)")
    size = int(float(match.group(1)) * UNITS[match.group(2)])
    if size < 1024:
        raise UsageError(f"--max-body {text!r} is under 1 KiB (a single row needs more; e.g. 16MiB)")
    return size
