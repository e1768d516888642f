"""Helpers shared by the tests: run the real ``ml`` and check what it imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_ml(
    *args: str, cwd: Path, home: Path, columns: int = 200, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``ml ARGS...`` (as ``python -m vml``) with stdin closed and text output."""
    env = {**os.environ, "HOME": str(home), "COLUMNS": str(columns)}
    env.pop("VML_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "vml", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_ml_in_process_report_torch(args: list[str], cwd: Path) -> tuple[str, bool]:
    """Run ``ml ARGS`` in a fresh interpreter; return its stdout and whether torch got
    imported (the listing and help paths must not pay for it)."""
    code = (
        "import sys\n"
        "from vml.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr.strip().splitlines()[-1] == "True"
