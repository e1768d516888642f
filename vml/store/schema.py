"""Opening the database: WAL, a busy timeout, and the schema brought up to date once,
under a lock, by the migrations in ``vml.store.migrations``.

The schema version is ``PRAGMA user_version``: the number of migrations applied.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 6  # the number of migrations in vml.store.migrations


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` and bring its schema up to date.
    Rows come back as ``sqlite3.Row``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # With WAL this cannot corrupt the file; a power cut may lose the last commits.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")
    if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        # Two processes opening a new store at once must not both migrate it.
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            from vml.store.migrations import migrate

            reached = migrate(connection)
            if reached != SCHEMA_VERSION:
                raise RuntimeError(f"store schema {reached} after migrating, expected {SCHEMA_VERSION}")
    connection.row_factory = sqlite3.Row
    return connection
