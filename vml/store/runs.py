"""Runs, their per-epoch metrics and events, in ``trainings/vml.db``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

from vml.errors import ConflictError, UsageError, disk_full, is_disk_full
from vml.invocation import command_line
from vml.names import generate_name
from vml.store.columns import ACTIVE_STATES, DELETED, ENDED_STATES, EPOCH_METRICS, RUN_STATES, TEST_METRICS
from vml.store.schema import open_database
from vml.store.selection import Selection, json_select, value_sql

__all__ = [
    "ACTIVE_STATES",
    "DELETED",
    "ENDED_STATES",
    "EPOCH_METRICS",
    "RUN_STATES",
    "TEST_METRICS",
    "RunStore",
    "utcnow",
]

METRIC_INSERT = "insert into metrics (run_id, key, epoch, step, value, time) values (?, ?, ?, ?, ?, ?)"


def utcnow() -> str:
    """Now as ISO-8601 UTC with milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunStore:
    """The project's run records. Open one per thread or process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection = open_database(path)

    def close(self) -> None:
        self.conn.close()

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
        with self.conn:
            cursor = self.conn.execute(
                f"insert into runs ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
        return cursor.lastrowid

    def create_run_with_folder(
        self, name: str, name_generated: bool, model: str, hyperparameters: dict[str, Any], **fields: Any
    ) -> tuple[int, str]:
        """Record a new run and make its folder beside the store: ``(id, name)``. A
        generated name that another process took meanwhile is replaced; a chosen one
        raises ``UsageError``, an existing folder ``ConflictError``. ``command`` (the
        command line that recorded it) defaults to this process's."""
        fields.setdefault("command", command_line())
        while True:
            try:
                run_id = self.create_run(name, model, hyperparameters, **fields)
                break
            except sqlite3.IntegrityError:
                if not name_generated:
                    raise UsageError(f"a run named {name!r} already exists (pick another --name)") from None
                name = generate_name(self.names())
        folder = self.path.parent / name
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            self.delete_run(run_id)
            raise ConflictError(
                f"folder {folder} already exists (pick another --name or remove it)"
            ) from None
        except OSError as exc:  # a full disk (ext4 gives a folder a block): no row without it
            self.delete_run(run_id)
            if is_disk_full(exc):
                raise disk_full(folder, None) from None
            raise
        return run_id, name

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set fields on a run (progress, status, results)."""
        with self.conn:
            self.conn.execute(
                f"update runs set {', '.join(f'[{key}] = ?' for key in fields)} where id = ?",
                [*fields.values(), run_id],
            )

    def update_hyperparameters(self, run_id: int, hyperparameters: dict[str, Any]) -> None:
        """Replace a run's hyperparameters (``ml resume --epochs`` changes its epochs)."""
        self.update_run(run_id, hyperparameters=json.dumps(hyperparameters, sort_keys=True))

    def update_queued(self, name: str, **fields: Any) -> bool:
        """Set fields on run ``name`` only while it is ``queued``; True if it was."""
        with self.conn:
            cursor = self.conn.execute(
                f"update runs set {', '.join(f'[{key}] = ?' for key in fields)} where name = ? and status = 'queued'",
                [*fields.values(), name],
            )
        return cursor.rowcount == 1

    def set_status(self, run_id: int, status: str, expect: Iterable[str], **fields: Any) -> bool:
        """Move a run to ``status`` only if it is still in one of the ``expect`` states,
        in one statement, so a reader marking a run crashed cannot overwrite the worker
        that finished it a moment before. True if the row changed."""
        expect = tuple(expect)
        fields = {"status": status, **fields}
        assignments = ", ".join(f"[{key}] = ?" for key in fields)
        marks = ", ".join("?" for _ in expect)
        with self.conn:
            cursor = self.conn.execute(
                f"update runs set {assignments} where id = ? and status in ({marks})",
                [*fields.values(), run_id, *expect],
            )
        return cursor.rowcount == 1

    def mark_crashed(self, run_id: int, reason: str, expect: Iterable[str] = ACTIVE_STATES) -> bool:
        """Record that a run's process died without recording an end: ``crashed``,
        with ``reason`` as its error and an event. Only while it is still in one of
        ``expect`` (the worker may have ended it a moment ago); True if it was."""
        marked = self.set_status(run_id, "crashed", expect, ended_at=utcnow(), error=f"crashed: {reason}")
        if marked:
            self.add_event(run_id, "crashed", reason)
        return marked

    def worker_gone(self, name: str, reason: str) -> dict[str, Any] | None:
        """Run ``name`` once its worker has gone: as the worker recorded its end, or
        marked ``crashed`` with ``reason`` when it did not. None if it was deleted."""
        row = self.run_by_name(name)
        if row is not None and row["status"] in ACTIVE_STATES and self.mark_crashed(row["id"], reason):
            row = self.run_by_name(name) or row
        return row

    def request_cancel(self, run_id: int) -> None:
        """Ask the run's worker to stop; it sees this within about a second."""
        with self.conn:
            self.conn.execute(
                "update runs set cancel_requested = ? where id = ? and cancel_requested is null",
                [utcnow(), run_id],
            )

    def cancel_requested(self, run_id: int) -> bool:
        row = self.conn.execute("select cancel_requested from runs where id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def delete_run(self, run_id: int) -> None:
        """Remove a run's row with its metrics and events, in one transaction."""
        with self.conn:
            for table in ("metrics", "events"):
                self.conn.execute(f"delete from {table} where run_id = ?", [run_id])
            self.conn.execute("delete from runs where id = ?", [run_id])

    def add_metric_points(self, points: list[tuple[int, str, int, int, float, str]]) -> None:
        """Append metric points ``(run_id, key, epoch, step, value, time)`` in one
        transaction: the trainer's batched per-step logging."""
        if points:
            with self.conn:
                self.conn.executemany(METRIC_INSERT, points)

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        """Drop a run's metric points past global step ``step`` (what a resumed run
        will log again)."""
        with self.conn:
            self.conn.execute("delete from metrics where run_id = ? and step > ?", [run_id, step])

    def add_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append metric rows (run_id, key, epoch, step, value, time) in one transaction."""
        rows = list(rows)
        if rows:
            points = [(r["run_id"], r["key"], r["epoch"], r["step"], r["value"], r["time"]) for r in rows]
            self.add_metric_points(points)

    def add_event(self, run_id: int, kind: str, message: str) -> None:
        with self.conn:
            self.conn.execute(
                "insert into events (run_id, time, kind, message) values (?, ?, ?, ?)",
                [run_id, utcnow(), kind, message],
            )

    def runs(self, status: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All runs (or those in the given states), newest first, with hyperparameters
        decoded: for the few a state picks (``select`` reads a listing)."""
        where, params = _status_filter(status)
        sql = f"select * from runs {where} order by started_at desc, id desc"
        return [_decode(row) for row in self.conn.execute(sql, params)]

    def select(
        self, selection: Selection, limit: int | None = None, decode: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The runs ``selection`` picks, in its order, at most ``limit``, read as they are
        iterated; hyperparameters decoded unless not ``decode`` (then the stored JSON)."""
        where, params = selection.where()
        order, order_params = selection.order()
        sql = f"select * from runs {where} {order}"
        if limit is not None:
            sql += f" limit {int(limit)}"
        cursor = self.conn.execute(sql, [*params, *order_params])
        for row in cursor:
            yield _decode(row) if decode else dict(row)

    def select_json(self, selection: Selection) -> Iterator[tuple[str, str, str]]:
        """``(name, status, JSON)`` of the runs ``selection`` picks, in its order: each run
        as ``ml list --format json`` shows it, one line, put together by SQLite (about 3
        us a run, against 20 for building a dict and ``json.dumps``)."""
        where, params = selection.where()
        order, order_params = selection.order()
        cursor = self.conn.cursor()
        cursor.row_factory = None
        select, template, floats, texts = json_select()
        sql = f"select {select} from runs {where} {order}"
        for row in cursor.execute(sql, [*params, *order_params]):
            values = list(row[2:])
            for i in floats:
                values[i] = _json_float(values[i])
            for i in texts:
                values[i] = "null" if values[i] is None else encode_basestring_ascii(values[i])
            yield row[0], row[1], template % tuple(values)

    def select_names(self, selection: Selection) -> Iterator[tuple[str, str]]:
        """``(name, status)`` of the runs ``selection`` picks, unordered: the light read
        that counts them when Python must look at the state each reads."""
        where, params = selection.where()
        cursor = self.conn.cursor()
        cursor.row_factory = None
        yield from cursor.execute(f"select name, status from runs {where}", params)

    def count_selected(self, selection: Selection) -> int:
        """How many runs ``selection`` picks (as SQL sees them: see ``Selection.exact``)."""
        where, params = selection.where()
        return self.conn.execute(f"select count(*) from runs {where}", params).fetchone()[0]

    def holds_number(self, column: str, states: Iterable[str] | None = None) -> bool:
        """Whether any run (in ``states``) has a number in ``column``."""
        value, params = value_sql(column)
        where, where_params = Selection(states=list(states) if states is not None else None).where()
        where = f"{where} and" if where else "where"
        sql = f"select 1 from runs {where} typeof({value}) in ('integer', 'real') limit 1"
        return self.conn.execute(sql, [*where_params, *params]).fetchone() is not None

    def hyperparameter_keys(self) -> set[str]:
        """Every hyperparameter name any run was recorded with."""
        return {row[0] for row in self.conn.execute("select key from hyperparameter_keys")}

    def newest_run(self) -> dict[str, Any] | None:
        """The run started last (``@last``)."""
        row = self.conn.execute("select * from runs order by started_at desc, id desc limit 1").fetchone()
        return _decode(row) if row else None

    def runs_named_like(self, prefix: str, limit: int) -> tuple[list[dict[str, Any]], int]:
        """At most ``limit`` runs whose name starts with ``prefix``, by name, and how many
        there are, through the name index (a range, not ``like``, which reads every name)."""
        bounds = [prefix, prefix + "\U0010ffff"]
        sql = "select * from runs where name >= ? and name < ? order by name limit ?"
        found = [_decode(row) for row in self.conn.execute(sql, [*bounds, limit])]
        if len(found) < limit:
            return found, len(found)
        total = self.conn.execute(
            "select count(*) from runs where name >= ? and name < ?", bounds
        ).fetchone()[0]
        return found, total

    def revision(self) -> int:
        """The store's revision: every insert, update or delete of a run moves it on."""
        return self.conn.execute("select rev from revision").fetchone()[0]

    def runs_changed_since(self, revision: int) -> list[dict[str, Any]]:
        """The runs inserted or updated after ``revision``, hyperparameters decoded."""
        return [_decode(row) for row in self.conn.execute("select * from runs where rev > ?", [revision])]

    def run_ids(self) -> set[int]:
        return {row[0] for row in self.conn.execute("select id from runs")}

    def ended_before(self, cutoff: str, states: Iterable[str]) -> list[dict[str, Any]]:
        """``id``, ``name``, ``status``, ``started_at`` and ``ended_at`` of the runs in
        ``states`` that ended (or, with no end, started) before ``cutoff`` (an ISO
        timestamp), newest first."""
        states = list(states)
        marks = ", ".join("?" for _ in states)
        sql = (
            f"select id, name, status, started_at, ended_at from runs where status in ({marks})"
            " and coalesce(ended_at, started_at) < ? order by started_at desc, id desc"
        )
        return [dict(row) for row in self.conn.execute(sql, [*states, cutoff])]

    def delete_runs(self, run_ids: list[int]) -> None:
        """Remove these runs' rows with their metrics and events, in one transaction."""
        # A page cache of 64 MiB, not 2: deleting 30,000 runs' 1,500,000 metric rows
        # took 6.9 s, not 8.6 (ml prune of 90,000 runs).
        self.conn.execute("pragma cache_size = -65536")
        with self.conn:
            for start in range(0, len(run_ids), 500):  # SQLite caps the parameters of one statement
                chunk = run_ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for table in ("metrics", "events"):
                    self.conn.execute(f"delete from {table} where run_id in ({marks})", chunk)
                self.conn.execute(f"delete from runs where id in ({marks})", chunk)

    def count(self, status: Iterable[str] | None = None) -> int:
        """How many runs there are (in the given states)."""
        where, params = _status_filter(status)
        return self.conn.execute(f"select count(*) from runs {where}", params).fetchone()[0]

    def run_marks(self, columns: str) -> dict[int, tuple[Any, ...]]:
        """``columns`` (a select list starting with ``id``) of every run, by id: the
        light read that tells a live view which runs changed."""
        return {row[0]: tuple(row) for row in self.conn.execute(f"select {columns} from runs")}

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("select * from runs where name = ?", [name]).fetchone()
        return _decode(row) if row else None

    def names(self) -> set[str]:
        return {row["name"] for row in self.conn.execute("select name from runs")}

    def metrics(self, run_id: int, key: str | None = None) -> list[dict[str, Any]]:
        """A run's metric rows in step order, optionally of one key."""
        where, params = ("run_id = ?", [run_id]) if key is None else ("run_id = ? and key = ?", [run_id, key])
        return [
            dict(row)
            for row in self.conn.execute(f"select * from metrics where {where} order by step, rowid", params)
        ]

    def create_sweep(self, sweep_id: str, source: str, **fields: Any) -> None:
        """Record a sweep (its runs point at it through their ``sweep`` column)."""
        row = {"id": sweep_id, "created_at": utcnow(), "source": source, **fields}
        with self.conn:
            self.conn.execute(
                f"insert into sweeps ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
                list(row.values()),
            )

    def update_sweep(self, sweep_id: str, **fields: Any) -> None:
        with self.conn:
            self.conn.execute(
                f"update sweeps set {', '.join(f'[{key}] = ?' for key in fields)} where id = ?",
                [*fields.values(), sweep_id],
            )

    def sweep(self, sweep_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("select * from sweeps where id = ?", [sweep_id]).fetchone()
        return dict(row) if row else None

    def sweep_ids(self) -> list[str]:
        """The ids of the recorded sweeps, newest first."""
        return [row[0] for row in self.conn.execute("select id from sweeps order by created_at desc")]

    def study_ids(self) -> list[str]:
        """The ids of the recorded studies (sweeps of ``ml tune``), newest first."""
        sql = "select id from sweeps where study is not null order by created_at desc"
        return [row[0] for row in self.conn.execute(sql)]

    def open_sweeps(self) -> list[dict[str, Any]]:
        """The sweeps a scheduler process is still running (or was, until it died)."""
        sql = "select * from sweeps where ended_at is null and pid is not null"
        return [dict(row) for row in self.conn.execute(sql)]

    def sweep_runs(self, sweep_id: str) -> list[dict[str, Any]]:
        """A sweep's runs in the order they were queued, hyperparameters decoded."""
        sql = "select * from runs where sweep = ? order by id"
        return [_decode(row) for row in self.conn.execute(sql, [sweep_id])]

    def metric_points_since(
        self, run_ids: list[int], key: str, after: int
    ) -> list[tuple[int, int, int, float]]:
        """``(rowid, run_id, epoch, value)`` of metric ``key`` recorded for these runs
        after rowid ``after``, in the order recorded: what a follower has not seen yet."""
        if not run_ids:
            return []
        marks = ", ".join("?" for _ in run_ids)
        sql = (
            f"select rowid, run_id, epoch, value from metrics where key = ? and rowid > ?"
            f" and run_id in ({marks}) order by rowid"
        )
        return [tuple(row) for row in self.conn.execute(sql, [key, after, *run_ids])]

    def sweep_names(self, sweep_id: str, status: str | None = None) -> list[str]:
        """The names of a sweep's runs (in ``status``), in the order they were queued."""
        sql, params = "select name from runs where sweep = ?", [sweep_id]
        if status is not None:
            sql, params = sql + " and status = ?", [*params, status]
        return [row[0] for row in self.conn.execute(sql + " order by id", params)]


def _status_filter(status: Iterable[str] | None) -> tuple[str, list[str]]:
    if status is None:
        return "", []
    states = list(status)
    return f"where status in ({', '.join('?' for _ in states)})", states


def _json_float(value: float | None) -> str:
    """A float column as JSON: what ``json.dumps`` writes, NaN and infinities too."""
    if value is None:
        return "null"
    text = repr(value)
    return text if text[-1].isdigit() else json.dumps(value)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    row = dict(row)
    row["hyperparameters"] = json.loads(row["hyperparameters"] or "{}")
    return row
