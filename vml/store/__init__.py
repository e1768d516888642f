"""The run store: SQLite through sqlite-utils. This package owns all SQL."""

from vml.store.runs import RunStore

__all__ = ["RunStore"]
