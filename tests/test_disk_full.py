"""A disk that fills while a run writes: a real small tmpfs, mounted by the test (root
only; elsewhere the tests skip and say why)."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vml import api
from vml.atomic import write_text_atomic
from vml.data.cache import CacheStore
from vml.errors import DiskFullError
from vml.store import RunStore
from vml.train.checkpoint import save_checkpoint

HIDDEN = 2048
# The demo's MLP (64 inputs, one hidden layer, 10 classes): best.pt holds the weights,
# last.pt the weights and Adam's two moments. Measured: 619,669 and 1,862,759 bytes.
PARAMS = 64 * HIDDEN + HIDDEN + HIDDEN * 10 + 10
BEST_BYTES, LAST_BYTES = 4 * PARAMS, 12 * PARAMS
# What else a run puts on the disk before its second epoch's checkpoints: the cache
# entry (480 KB), the store and its WAL, config.yaml, repro.json, log.txt. Measured:
# 750 to 880 KB over runs here. The WAL grows by a page a heartbeat, so a slower
# machine takes more: the test holds while it stays within 600 KB of the aim.
OTHER_BYTES = 880_000


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


def fill(disk: Path, leave: int) -> Path:
    """A file taking all of ``disk``'s free space but ``leave`` bytes."""
    filler = disk / "filler"
    size = shutil.disk_usage(disk).free - leave
    assert size > 0, f"only {shutil.disk_usage(disk).free} bytes free"
    with filler.open("wb") as handle:
        for start in range(0, size, 1 << 20):
            handle.write(bytes(min(1 << 20, size - start)))
    return filler


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_one(small_disk: Path, monkeypatch) -> None:
    monkeypatch.chdir(small_disk)  # files are named from the working directory, as ml names them
    config, best = small_disk / "config.yaml", small_disk / "best.pt"
    write_text_atomic(config, "epochs: 3\n")
    save_checkpoint({"model": torch.ones(10)}, best)
    fill(small_disk, leave=256 * 1024)

    with pytest.raises(DiskFullError) as text_error:
        write_text_atomic(config, "x" * (1 << 20))
    with pytest.raises(DiskFullError) as checkpoint_error:
        save_checkpoint({"model": torch.zeros(1 << 18)}, best)  # 1 MiB of weights

    assert str(text_error.value).startswith(
        f"disk full while writing config.yaml (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert str(checkpoint_error.value).startswith(
        f"disk full while writing best.pt (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert config.read_text() == "epochs: 3\n"
    assert torch.equal(torch.load(best, weights_only=True)["model"], torch.ones(10))
    assert temporary_files(small_disk) == []


def test_a_cache_entry_that_does_not_fit_leaves_nothing_a_later_run_would_use(
    small_disk: Path, monkeypatch
) -> None:
    monkeypatch.chdir(small_disk)
    cache = CacheStore(small_disk / ".cache")
    fingerprint = "0" * 32
    fill(small_disk, leave=256 * 1024)

    with pytest.raises(DiskFullError) as error:
        cache.save(fingerprint, {"x_train": np.zeros(1 << 18, dtype=np.float32)}, {})

    assert str(error.value).startswith(
        f"disk full while writing .cache/{fingerprint} (about 1.0 MiB needed, 256.0 KiB free on {small_disk}); "
    )
    assert cache.load(fingerprint) is None
    assert list(cache.directory.iterdir()) == []


def test_a_run_that_fills_the_disk_fails_with_one_line_and_resumes_once_there_is_room(
    small_disk: Path, ml
) -> None:
    project = api.create_project(small_disk / "demo")
    # Epoch 1 writes best.pt and last.pt; epoch 2 can replace best.pt (it needs
    # BEST_BYTES free) but not last.pt (LAST_BYTES): leave the middle of the two free.
    filler = fill(small_disk, leave=BEST_BYTES + LAST_BYTES + OTHER_BYTES + (BEST_BYTES + LAST_BYTES) // 2)
    folder = project / "trainings" / "full"

    failed = ml("train", "--epochs=2", f"--hidden-size={HIDDEN}", "--name=full", cwd=project)

    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    message = failed.stderr.splitlines()[-1]
    assert message.startswith(
        "ml: error: disk full while writing trainings/full/last.pt (about 1.8 MiB needed, "
    )
    assert message.endswith(f" free on {small_disk}); free some space there, then: ml resume full")
    with RunStore(project / "trainings" / "vml.db") as store:
        row = store.run_by_name("full")
    assert row["status"] == "failed" and row["error"] == message.removeprefix("ml: error: ")
    assert f"failed: {row['error']}" in (folder / "log.txt").read_text()
    assert torch.load(folder / "best.pt", weights_only=True)["epoch"] in (1, 2)
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 1
    assert temporary_files(small_disk) == []
    with sqlite3.connect(project / "trainings" / "vml.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)

    filler.unlink()
    # In this process: a second `ml` would cost the suite another interpreter and torch
    # import (5 s on a loaded 2-core machine).
    resumed = api.Project(project).resume("full", stderr=io.StringIO())

    assert resumed.status == "finished"
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2
