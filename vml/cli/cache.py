"""``ml cache``: show the data cache's entries in ``.cache/``, prune or clear them."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import typer

from vml import api
from vml.cli import render
from vml.cli.options import FORMATS, check_format, command_group, format_option
from vml.errors import UsageError, human_size

app = command_group()

COLUMNS = ("fingerprint", "source", "size", "created", "last used", "runs", "status")
CSV_COLUMNS = ("fingerprint", "source", "size", "created", "last_used", "runs", "status", "problem")

FORMAT_OPTION = format_option(FORMATS)


@app.callback(invoke_without_command=True)
def cache(ctx: typer.Context, fmt: str = FORMAT_OPTION) -> None:
    """Show the data cache's entries, or prune or clear them.

    Without a command it lists the entries, like `ml cache list`. Removing an entry only
    costs the next `ml train` that needs it the time to prepare the data again.
    """
    if ctx.invoked_subcommand is None:
        _show(fmt)


@app.command("list")
def list_entries(fmt: str = FORMAT_OPTION) -> None:
    """List the cache entries and the runs that used them."""
    _show(fmt)


@app.command("prune")
def prune(
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove them; without it, only show what would go."),
) -> None:
    """Remove unused and damaged entries (a dry run without --yes).

    Entries used by a recorded run are kept, and so is any entry a running or queued
    run uses. A run whose folder was deleted no longer holds its entry. Staging
    folders left by an interrupted write (over an hour old) go too.
    """
    removed = api.prune_cache(api.Project(), dry_run=not yes)
    if not removed:
        print("nothing to prune: every cache entry is used by a run")
        return
    _print_items(removed)
    if yes:
        print(f"removed {_count(removed)}, freed {human_size(_total(removed))}")
    else:
        print(f"would remove {_count(removed)}, freeing {human_size(_total(removed))} (add --yes to remove)")


@app.command("clear")
def clear(
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
) -> None:
    """Remove every cache entry not used by a running or queued run.

    The stat cache (remembered file hashes) goes too. Asks first on a terminal;
    elsewhere it needs --yes.
    """
    project = api.Project()
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "ml cache clear removes every cache entry and stdin is not a terminal (add --yes)"
            )
        planned = api.clear_cache(project, dry_run=True)
        if not planned:
            print("the cache is empty")
            return
        if not typer.confirm(f"Remove {_count(planned)} ({human_size(_total(planned))}) from the cache?"):
            print("nothing removed", file=sys.stderr)
            raise typer.Exit(1)
    removed = api.clear_cache(project)
    kept = api.cache_entries(project)
    if removed:
        _print_items(removed)
    print(f"removed {_count(removed)}, freed {human_size(_total(removed))}")
    if kept:
        print(f"kept {_plural(len(kept), 'entry')} used by running or queued runs", file=sys.stderr)


def _show(fmt: str) -> None:
    check_format(fmt, FORMATS)
    entries = api.cache_entries(api.Project())
    if fmt == "json":
        render.print_json(entries)
        return
    if fmt == "csv":
        render.print_csv(CSV_COLUMNS, ([_raw(e, c) for c in CSV_COLUMNS] for e in entries))
        return
    if not entries:
        print("the cache is empty (ml train prepares the data and caches it in .cache/)")
        return
    render.print_table(COLUMNS, (_row(e) for e in entries))
    damaged = sum(e["status"] == "damaged" for e in entries)
    note = f", {damaged} damaged (ml cache prune --yes removes them)" if damaged else ""
    print(f"total: {_plural(len(entries), 'entry')}, {human_size(sum(e['size'] for e in entries))}{note}")


def _row(entry: dict[str, Any]) -> list[str]:
    return [
        entry["fingerprint"][:12],
        entry["source"] or "-",
        human_size(entry["size"]),
        _local(entry["created"]),
        _local(entry["last_used"]),
        ", ".join(entry["runs"]) or "-",
        entry["status"],
    ]


def _raw(entry: dict[str, Any], column: str) -> Any:
    value = entry[column]
    if column == "runs":
        return " ".join(value)
    return "" if value is None else value


def _print_items(items: list[dict[str, Any]]) -> None:
    render.print_table(
        ("item", "source", "size", "reason"),
        ([_item_name(i), i["source"] or "-", human_size(i["size"]), i["reason"]] for i in items),
    )


def _item_name(item: dict[str, Any]) -> str:
    return item["name"][:12] if item["kind"] == "entry" else item["name"]


def _count(items: list[dict[str, Any]]) -> str:
    entries = sum(i["kind"] == "entry" for i in items)
    others = len(items) - entries
    text = _plural(entries, "entry")
    return f"{text} and {_plural(others, 'other file')}" if others else text


def _total(items: list[dict[str, Any]]) -> int:
    return sum(i["size"] for i in items)


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _local(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value
