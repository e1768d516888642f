"""Opening the database (WAL, busy timeout) and its forward migrations.

The schema version is ``PRAGMA user_version``: the number of migrations applied.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

BUSY_TIMEOUT_MS = 30_000

migrations = Migrations("vml")


@migrations()
def m001_runs_metrics_events(db: Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "model": str,
            "status": str,
            "created_at": str,
            "started_at": str,
            "ended_at": str,
            "epoch": int,
            "epochs": int,
            "step": int,
            "steps": int,
            "hyperparameters": str,
            "fingerprint": str,
            "pid": int,
            "host": str,
            "heartbeat": str,
            "monitor": str,
            "best_metric": float,
            "best_epoch": int,
            "test_acc": float,
            "test_loss": float,
            "error": str,
        },
        pk="id",
        not_null={"name", "status", "model"},
    )
    db["runs"].create_index(["name"], unique=True)
    db["metrics"].create(
        {"run_id": int, "key": str, "epoch": int, "step": int, "value": float, "time": str},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id", "key", "step"])
    db["events"].create(
        {"id": int, "run_id": int, "time": str, "kind": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["events"].create_index(["run_id"])


@migrations()
def m002_process_identity_and_cancel(db: Database) -> None:
    # A pid alone can be reused: the process start time tells a live worker from a
    # new process that got its pid. cancel_requested lets ml cancel reach a worker
    # through the store, from any host.
    db["runs"].add_column("pid_started", float)
    db["runs"].add_column("cancel_requested", str)
    db["runs"].create_index(["status"])
    db["runs"].create_index(["started_at"])


def open_database(path: Path) -> Database:
    """Open (creating if needed) the store at ``path`` and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(path)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # With WAL this cannot corrupt the file; a power cut may lose the last commits.
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    if migrations.pending(db):
        # Two processes opening a new store at once must not both migrate it.
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            db.enable_wal()
            migrations.apply(db)  # a no-op for migrations the other process applied
            db.execute(f"PRAGMA user_version = {len(migrations.applied(db))}")
    return db
