"""Output helpers shared by commands: tables, markdown, JSON and CSV on stdout."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv")


def console() -> Console:
    """A console on stdout; off a terminal it is wide enough not to wrap tables."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=240, color_system=None)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def print_markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


def print_markdown(text: str) -> None:
    """Rendered on a terminal; the plain markdown when piped."""
    if sys.stdout.isatty():
        from rich.markdown import Markdown  # 75 ms to import: only when rendering

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)
