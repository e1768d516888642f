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
        **fields: Any,
    ) -> int:
        """Record a new run as ``running`` and return its id."""
        now = utcnow()
        row = {
            "name": name,
            "model": model,
            "status": "running",
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

    def add_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append metric rows (run_id, key, epoch, step, value, time) in one transaction."""
        rows = list(rows)
        if rows:
            with self.db.atomic():
                self.db["metrics"].insert_all(rows)

    def add_event(self, run_id: int, kind: str, message: str) -> None:
        self.db["events"].insert({"run_id": run_id, "time": utcnow(), "kind": kind, "message": message})

    def runs(self) -> list[dict[str, Any]]:
        """All runs, newest first, with hyperparameters decoded."""
        rows = self.db.query("select * from runs order by started_at desc, id desc")
        return [_decode(row) for row in rows]

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
