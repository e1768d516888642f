"""Runs, their per-epoch metrics and events, in ``trainings/vml.db``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from vml.store.schema import open_database

ACTIVE_STATES = ("queued", "running")
ENDED_STATES = ("finished", "failed", "cancelled", "killed", "crashed")
METRIC_INSERT = "insert into metrics (run_id, key, epoch, step, value, time) values (?, ?, ?, ?, ?, ?)"


def utcnow() -> str:
    """Now as ISO-8601 UTC with milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunStore:
    """The project's run records. Open one per thread or process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: Database = open_database(path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_run(
        self,
        name: str,
        model: str,
        hyperparameters: dict[str, Any],
        status: str = "running",
        **fields: Any,
    ) -> int:
        """Record a new run (``running`` unless told otherwise) and return its id.
        Raises ``sqlite3.IntegrityError`` when the name is taken."""
        now = utcnow()
        row = {
            "name": name,
            "model": model,
            "status": status,
            "created_at": now,
            "started_at": now,
            "heartbeat": now,
            "epoch": 0,
            "step": 0,
            "hyperparameters": json.dumps(hyperparameters, sort_keys=True),
            **fields,
        }
        return self.db["runs"].insert(row).last_pk

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set fields on a run (progress, status, results)."""
        self.db["runs"].update(run_id, fields)

    def set_status(self, run_id: int, status: str, expect: Iterable[str], **fields: Any) -> bool:
        """Move a run to ``status`` only if it is still in one of the ``expect`` states,
        in one statement, so a reader marking a run crashed cannot overwrite the worker
        that finished it a moment before. True if the row changed."""
        expect = tuple(expect)
        fields = {"status": status, **fields}
        assignments = ", ".join(f"[{key}] = ?" for key in fields)
        marks = ", ".join("?" for _ in expect)
        with self.db.conn:
            cursor = self.db.execute(
                f"update runs set {assignments} where id = ? and status in ({marks})",
                [*fields.values(), run_id, *expect],
            )
        return cursor.rowcount == 1

    def request_cancel(self, run_id: int) -> None:
        """Ask the run's worker to stop; it sees this within about a second."""
        with self.db.conn:
            self.db.execute(
                "update runs set cancel_requested = ? where id = ? and cancel_requested is null",
                [utcnow(), run_id],
            )

    def cancel_requested(self, run_id: int) -> bool:
        row = self.db.execute("select cancel_requested from runs where id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def delete_run(self, run_id: int) -> None:
        """Remove a run's row with its metrics and events, in one transaction."""
        with self.db.conn:
            for table in ("metrics", "events"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db.execute("delete from runs where id = ?", [run_id])

    def add_metric_points(self, points: list[tuple[int, str, int, int, float, str]]) -> None:
        """Append metric points ``(run_id, key, epoch, step, value, time)`` in one
        transaction: the trainer's batched per-step logging."""
        if points:
            with self.db.conn:
                self.db.conn.executemany(METRIC_INSERT, points)

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        """Drop a run's metric points past global step ``step`` (what a resumed run
        will log again)."""
        with self.db.conn:
            self.db.execute("delete from metrics where run_id = ? and step > ?", [run_id, step])

    def add_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append metric rows (run_id, key, epoch, step, value, time) in one transaction."""
        rows = list(rows)
        if rows:
            with self.db.atomic():
                self.db["metrics"].insert_all(rows)

    def add_event(self, run_id: int, kind: str, message: str) -> None:
        self.db["events"].insert({"run_id": run_id, "time": utcnow(), "kind": kind, "message": message})

    def runs(self, status: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All runs (or those in the given states), newest first, with hyperparameters
        decoded."""
        where, params = "", []
        if status is not None:
            states = tuple(status)
            where = f"where status in ({', '.join('?' for _ in states)})"
            params = list(states)
        rows = self.db.query(f"select * from runs {where} order by started_at desc, id desc", params)
        return [_decode(row) for row in rows]

    def run_by_id(self, run_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from runs where id = ?", [run_id]))
        return _decode(rows[0]) if rows else None

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from runs where name = ?", [name]))
        return _decode(rows[0]) if rows else None

    def names(self) -> set[str]:
        return {row["name"] for row in self.db.query("select name from runs")}

    def metrics(self, run_id: int, key: str | None = None) -> list[dict[str, Any]]:
        """A run's metric rows in step order, optionally of one key."""
        where, params = ("run_id = ?", [run_id]) if key is None else ("run_id = ? and key = ?", [run_id, key])
        return list(self.db.query(f"select * from metrics where {where} order by step, rowid", params))


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["hyperparameters"] = json.loads(row["hyperparameters"] or "{}")
    return row
