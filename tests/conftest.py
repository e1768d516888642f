"""Shared fixtures: a fresh demo project per test and a way to run the real ``ml``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("cannot mount a tmpfs here: the disk-full tests need root on Linux (CI runs them)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        reason = (mounted.stderr.strip().splitlines() or [f"exit code {mounted.returncode}"])[0]
        pytest.skip(f"cannot mount a tmpfs here: {reason}")
    try:
        yield disk.resolve()
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)
