"""Helpers shared by the tests: run the real ``ml`` and check what it imported."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from vml import api


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


def start_ml(*args: str, cwd: Path, home: Path) -> subprocess.Popen:
    """Start ``ml ARGS...`` (as ``python -m vml``) with text pipes for stdout and stderr."""
    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    env.pop("VML_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "vml", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run in the background would pass SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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


def image_project(root: Path, per_class: int = 30) -> Path:
    """Digits written as 8x8 PNGs into samples/<label>/."""
    project = api.create_project(root)
    with (project / "data" / "digits.csv").open() as handle:
        rows = list(csv.reader(handle))[1:]
    counts: dict[str, int] = {}
    for i, row in enumerate(rows):
        label = row[-1]
        if counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = project / "samples" / label
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (np.array(row[:-1], dtype=float).reshape(8, 8) * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    spec = {
        "model": "cnn",
        "samples-dir": "samples",
        "data": {"input": {"type": "labeled-image"}},
        "train": {"epochs": 15},
    }
    (project / "vergeml.yaml").write_text(yaml.safe_dump(spec))
    return project


def fill(disk: Path, leave: int, name: str = "filler") -> Path:
    """A file taking all of ``disk``'s free space but ``leave`` bytes."""
    filler = disk / name
    size = shutil.disk_usage(disk).free - leave
    assert size > 0, f"only {shutil.disk_usage(disk).free} bytes free"
    with filler.open("wb") as handle:
        for start in range(0, size, 1 << 20):
            handle.write(bytes(min(1 << 20, size - start)))
    return filler
