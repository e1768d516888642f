"""Opening the database: WAL, a busy timeout, and the schema brought up to date once,
under a lock, by the migrations in ``vml.store.migrations``.

The schema version is ``PRAGMA user_version``: the number of migrations applied.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

from vml.errors import store_disk_full

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 7  # the number of migrations in vml.store.migrations


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` and bring its schema up to date.
    Rows come back as ``sqlite3.Row``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, factory=_Connection)
    try:  # on a full disk the WAL's shared-memory file cannot be made: "disk I/O error"
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
    except sqlite3.Error as exc:
        connection.close()
        full = store_disk_full(exc, path)
        if full is None:
            raise
        raise full from exc
    connection.row_factory = sqlite3.Row
    return connection


class _Connection(sqlite3.Connection):
    """A connection whose transactions (``with connection:``, as every write of the
    store is made) raise ``DiskFullError`` naming the store when the disk is full,
    after rolling back: the store keeps its last committed state."""

    def __init__(self, database: str | Path, *args, **kwargs) -> None:
        super().__init__(database, *args, **kwargs)
        self.path = Path(database)

    def __exit__(self, kind, value, traceback) -> bool:
        try:
            handled = super().__exit__(kind, value, traceback)  # commits, or rolls back
        except sqlite3.Error as exc:  # the commit failed (and was rolled back)
            full = store_disk_full(exc, self.path)
            if full is None:
                raise
            raise full from exc
        full = store_disk_full(value, self.path) if value is not None else None
        if full is not None:
            raise full from value
        return handled
