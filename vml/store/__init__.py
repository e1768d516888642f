"""The run store: SQLite through sqlite-utils. This package owns all SQL."""

from vml.store.records import RunRecords
from vml.store.runs import RunStore

__all__ = ["RunRecords", "RunStore"]
