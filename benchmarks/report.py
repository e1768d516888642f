"""The report shared by the benchmark scripts: result lines, the printed table and the JSON file.

The scripts run as ``python benchmarks/bench_x.py``, which puts this folder on ``sys.path``,
so they import it as ``from report import ...``.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class Line:
    """One row of the results table, with the raw numbers behind it. ``passed`` is None
    for a line that only reports a number."""

    name: str
    target: str
    measured: str
    passed: bool | None
    values: dict[str, Any]
    profile: str | None = field(default=None, repr=False)


RESULT = {True: "pass", False: "FAIL", None: "-"}


def print_table(lines: list[Line], profile_format: str = "\n{profile}") -> None:
    """The results as a fixed-width table, then each line's profile, printed through
    ``profile_format`` (given ``name`` and ``profile``)."""
    rows = [("measurement", "target", "measured", "result")]
    rows += [(x.name, x.target, x.measured, RESULT[x.passed]) for x in lines]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for line in lines:
        if line.profile:
            print(profile_format.format(name=line.name, profile=line.profile))


def write_report(
    path: Path, lines: list[Line], elapsed: float, machine: dict[str, Any], args: dict[str, Any]
) -> None:
    """Write the JSON results to ``path``: when, the machine (Python, platform and CPUs,
    then ``machine``), ``args``, the seconds in all and every line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            **machine,
        },
        "args": args,
        "elapsed_s": elapsed,
        "results": [asdict(line) for line in lines],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {path}")


def finish(
    lines: list[Line],
    elapsed: float,
    path: Path,
    machine: dict[str, Any],
    args: dict[str, Any],
    profile_format: str = "\n{profile}",
) -> int:
    """Print the table and the seconds in all, write the JSON results; the exit code: 0
    if no line failed, else 1."""
    print_table(lines, profile_format)
    print(f"\n{elapsed:.0f} s in all")
    write_report(path, lines, elapsed, machine, args)
    return 0 if all(line.passed is not False for line in lines) else 1


def versions(*packages: str) -> dict[str, str]:
    """The installed version of each package, or ``not installed`` (pydantic, say,
    is not part of the README's setup)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def child_env(root: Path) -> dict[str, str]:
    """The commands' environment, as on a user's machine (see bench_store.py): bytecode
    written and read under the temporary directory, stdout buffered."""
    unset = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | {"PYTHONPYCACHEPREFIX": str(root / "pycache")}
