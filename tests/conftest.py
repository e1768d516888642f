"""Shared fixtures: a fresh demo project per test and a way to run the real ``ml``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import run_ml

from vml import api


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

    def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_ml(*args, cwd=cwd, home=home, timeout=timeout)

    return run
