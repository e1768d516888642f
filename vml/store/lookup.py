"""Run names by prefix for shell completion: a read-only look at the name index that
loads nothing but ``sqlite3``, never creates or migrates the store, and waits for no
writer (a tab key cannot wait 30 s for a lock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The end of a name range: every name starting with PREFIX sorts below PREFIX + this.
_HIGHEST = "\U0010ffff"


def run_names(db: Path, prefix: str, limit: int) -> tuple[list[str], bool]:
    """The run names starting with ``prefix``, by name, and whether that is all of them.
    Past ``limit`` names it returns instead where the names branch: the distinct
    ``prefix`` plus one more character (``a``, ``b``, ... for an empty prefix), each an
    index seek, so completion narrows the choice without listing 100,000 runs.
    No store (or an unreadable one) has no names."""
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except (sqlite3.Error, OSError, ValueError):
        return [], True
    try:
        sql = "select name from runs where name >= ? and name < ? order by name limit ?"
        found = [row[0] for row in connection.execute(sql, [prefix, prefix + _HIGHEST, limit + 1])]
        if len(found) <= limit:
            return found, True
        return _branches(connection, prefix), False
    except sqlite3.Error:  # no runs table yet, a locked or damaged file
        return [], True
    finally:
        connection.close()


def _branches(connection: sqlite3.Connection, prefix: str) -> list[str]:
    """``prefix`` plus each next character that some name has after it (``prefix``
    itself first when it is a whole name)."""
    sql = "select name from runs where name >= ? and name < ? order by name limit 1"
    branches: list[str] = []
    start = prefix
    while True:
        row = connection.execute(sql, [start, prefix + _HIGHEST]).fetchone()
        if row is None:
            return branches
        name = row[0]
        if name == prefix:
            branches.append(name)
            start = prefix + "\x00"
            continue
        branch = name[: len(prefix) + 1]
        branches.append(branch)
        start = branch[:-1] + chr(ord(branch[-1]) + 1)
