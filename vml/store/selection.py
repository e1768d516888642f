"""``ml list``'s filters and sort as SQL: what ``--where``, ``--sort`` and ``--status``
ask of the runs table, so a store of 100,000 runs is never read whole to show 50.

A condition means here what ``vml.query.Condition.matches`` means in Python: a run
without the value matches only ``!=``; a boolean compares as ``true``/``false`` text; a
number compares as a number; anything else compares as text. The one thing SQL cannot
see is a run that reads ``deleted`` (an ended run whose folder went): a condition on
``status`` lets those through, and the reader checks them again in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vml.query import OPERATORS as _OPERATORS
from vml.query import Condition
from vml.store.columns import ACTIVE_STATES, DELETED, ENDED_STATES, TEST_METRICS

# Each public field of a run (``ml list --format json``) and the column that holds it;
# the rest of a run's columns are its hyperparameters, in the ``hyperparameters`` JSON.
FIELD_COLUMNS = {
    "instance": "name",
    "model": "model",
    "status": "status",
    "training_start": "started_at",
    "training_end": "ended_at",
    "epoch": "epoch",
    "epochs": "epochs",
    "batch": "step",
    "batches": "steps",
    "test_acc": "test_acc",
    "test_loss": "test_loss",
    "test_f1": "test_f1",
    "test_auc": "test_auc",
    "test_ap": "test_ap",
    "test_mae": "test_mae",
    "test_rmse": "test_rmse",
    "test_r2": "test_r2",
    "monitor": "monitor",
    "best_metric": "best_metric",
    "best_epoch": "best_epoch",
    "fingerprint": "fingerprint",
    "error": "error",
    "sweep": "sweep",
    "trial": "trial",
    "prune_reason": "prune_reason",
    "rerun_of": "rerun_of",
}
# The columns of FIELD_COLUMNS that hold floats: SQLite's JSON writes 15 digits of
# them, so Python writes those (repr: the shortest text that reads back the same).
FLOAT_COLUMNS = frozenset((*TEST_METRICS, "best_metric"))
# Columns whose text vml writes from an alphabet JSON need not escape (validated run
# names, the states, ISO timestamps, hex digests), and the integer columns: SQLite
# writes those into the JSON. Other text is escaped by Python's json (SQLite's
# json_quote took 0.4 s for five columns of 100,000 runs, Python 0.05 s).
PLAIN_TEXT_COLUMNS = frozenset(("name", "status", "started_at", "ended_at", "fingerprint", "rerun_of"))
INTEGER_COLUMNS = frozenset(("epoch", "epochs", "step", "steps", "best_epoch", "trial"))
NEWEST_FIRST = "started_at desc, id desc"
ENDED_STATES_SQL = f"({', '.join(repr(state) for state in ENDED_STATES)})"
_SQL_OPERATORS = {">=": ">=", "<=": "<=", "!=": "!=", "==": "=", ">": ">", "<": "<", "=": "="}


@dataclass(frozen=True)
class Selection:
    """Which runs, in which order: ``states`` (None: all; ``deleted`` included), ``conditions`` that
    must all hold, and ``sort`` (a public column and whether descending; None: newest
    first)."""

    states: Sequence[str] | None = None
    conditions: Sequence[Condition] = ()
    sort: tuple[str, bool] | None = None

    @property
    def exact(self) -> bool:
        """Whether SQL alone decides it: not when the state a run reads matters (any
        ended run may read ``deleted``) or a condition is on the whole mapping."""
        states_read = self.states is not None and not set(self.states) <= set(ACTIVE_STATES)
        return not states_read and not any(c.column in ("status", "hyperparameters") for c in self.conditions)

    def where(self) -> tuple[str, list[object]]:
        """The ``where`` clause (empty, or starting with ``where``) and its parameters."""
        parts, params = [], []
        if self.states is not None:
            # "deleted" is not stored: any ended run may read so.
            stored = set(self.states) - {DELETED} | (set(ENDED_STATES) if DELETED in self.states else set())
            parts.append(f"status in ({', '.join('?' for _ in stored)})")
            params += sorted(stored)
        for condition in self.conditions:
            sql, values = condition_sql(condition)
            parts.append(sql)
            params += values
        return (f"where {' and '.join(parts)}" if parts else ""), params

    def order(self) -> tuple[str, list[object]]:
        """The ``order by`` clause and its parameters: runs without the sort value last,
        whichever the direction, ties newest first (as a stable sort of the newest-first
        list leaves them)."""
        if self.sort is None:
            return f"order by {NEWEST_FIRST}", []
        column, descending = self.sort
        value, params = value_sql(column)
        direction = "desc" if descending else "asc"
        return f"order by ({value}) is null, {value} {direction}, {NEWEST_FIRST}", params * 2


def value_sql(column: str) -> tuple[str, list[object]]:
    """The SQL expression of a public column (a run field or a hyperparameter)."""
    if column in FIELD_COLUMNS:
        return f"[{FIELD_COLUMNS[column]}]", []
    return "json_extract(hyperparameters, ?)", [json_path(column)]


def json_path(key: str) -> str:
    """A JSON path naming one key of the hyperparameters, quoted: a key may hold a dot."""
    return '$."' + key.replace('"', '\\"') + '"'


def condition_sql(condition: Condition) -> tuple[str, list[object]]:
    """One condition as a boolean SQL expression and its parameters."""
    op = _SQL_OPERATORS[condition.op]
    wanted, text = condition.value, str(condition.value)
    if condition.column == "status":
        # A stored ended state may read "deleted": let the reader decide those.
        deleted = "1" if _OPERATORS[condition.op]("deleted", text) else "0"
        return f"(status {op} ? or ({deleted} and status in {ENDED_STATES_SQL}))", [text]
    if condition.column == "hyperparameters":
        return "1", []  # the whole mapping compared as text: left to the reader
    number = wanted if isinstance(wanted, (int, float)) else text
    missing = "1" if op == "!=" else "0"
    if condition.column in FIELD_COLUMNS:  # the runs table holds no booleans
        value = f"[{FIELD_COLUMNS[condition.column]}]"
        sql = (
            f"(case when {value} is null then {missing}"
            f" when typeof({value}) in ('integer', 'real') then {value} {op} ?"
            f" else cast({value} as text) {op} ? end)"
        )
        return sql, [number, text]
    path = json_path(condition.column)
    value, kind = "json_extract(hyperparameters, ?)", "json_type(hyperparameters, ?)"
    sql = (
        f"(case when {value} is null then {missing}"
        f" when {kind} in ('true', 'false') then {kind} {op} ?"
        f" when {kind} in ('integer', 'real') then {value} {op} ?"
        f" else cast({value} as text) {op} ? end)"
    )
    return sql, [path, path, path, text.lower(), path, path, number, path, text]


def json_select() -> tuple[str, str, tuple[int, ...], tuple[int, ...]]:
    """What ``RunStore.select_json`` asks SQLite for and how it puts a run together:
    the select list (name, status, then each run of consecutive fields as JSON text
    SQLite writes, the hyperparameters' JSON last; the floats and free text each on
    their own, for Python to write), the ``%`` template taking those values in order,
    and the positions of the floats and of the free text among them."""
    select, template, floats, texts, run = ["name", "status"], [], [], [], []

    def own(column: str, key: str, positions: list[int]) -> None:
        if run:
            select.append(" || ', ' || ".join(run))
            template.append("%s")
            run.clear()
        positions.append(len(select) - 2)
        select.append(f"[{column}]")
        template.append(f'"{key}": %s')

    for key, column in FIELD_COLUMNS.items():
        if column in FLOAT_COLUMNS:
            own(column, key, floats)
        elif column in INTEGER_COLUMNS:
            run.append(f"'\"{key}\": ' || coalesce([{column}], 'null')")
        elif column in PLAIN_TEXT_COLUMNS:
            run.append(f"'\"{key}\": ' || coalesce('\"' || [{column}] || '\"', 'null')")
        else:
            own(column, key, texts)
    run.append("'\"hyperparameters\": ' || coalesce(hyperparameters, '{}')")
    select.append(" || ', ' || ".join(run))
    template.append("%s")
    return ", ".join(select), "{" + ", ".join(template) + "}", tuple(floats), tuple(texts)
