"""The run store: SQLite through sqlite-utils. This package owns all SQL.

``RunStore`` and ``RunRecords`` load on first use, so ``vml.store.lookup`` (the run
names shell completion reads) costs no sqlite-utils import: about 30 ms of a 100 ms
completion, measured in benchmarks/bench_completion.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["RunRecords", "RunStore"]

if TYPE_CHECKING:
    from vml.store.records import RunRecords
    from vml.store.runs import RunStore


def __getattr__(name: str) -> Any:
    if name == "RunStore":
        from vml.store.runs import RunStore

        return RunStore
    if name == "RunRecords":
        from vml.store.records import RunRecords

        return RunRecords
    raise AttributeError(f"module 'vml.store' has no attribute {name!r}")
