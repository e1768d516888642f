"""Shared fixtures: a fresh demo project per test and a way to run the real ``ml``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vml import api

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project made by ``ml new`` from the default (digits) template."""
    return api.create_project(tmp_path / "demo")


@pytest.fixture
def ml(tmp_path: Path):
    """Run ``ml ARGS...`` as a real subprocess: ``ml(*args, cwd=...)`` returns the
    CompletedProcess with text stdout/stderr (stdin closed, not a terminal)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    env.pop("VML_DEBUG", None)

    def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vml", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
